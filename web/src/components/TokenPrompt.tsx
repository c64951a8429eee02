import { useState, type FormEvent } from 'react'
import { setToken } from '../auth'
import { useI18n } from '../i18n'

/** Asks for the coordinator's API token after a 401; saving it reconnects everything. */
export function TokenPrompt({ onDone }: { onDone: () => void }) {
  const { t } = useI18n()
  const [value, setValue] = useState('')
  const submit = (event: FormEvent) => {
    event.preventDefault()
    if (!value.trim()) return
    setToken(value.trim())
    onDone()
  }
  return (
    <div className="overlay">
      <form
        className="card dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="token-title"
        onSubmit={submit}
        data-testid="token-prompt"
      >
        <h2 id="token-title">{t('tokenTitle')}</h2>
        <p className="muted">{t('tokenHelp')}</p>
        <label className="field">
          <span>{t('token')}</span>
          <input
            type="password"
            autoComplete="current-password"
            value={value}
            onChange={(e) => setValue(e.target.value)}
            data-testid="token-input"
            autoFocus
          />
        </label>
        <div className="dialog-actions">
          <button type="submit" className="btn btn-primary">
            {t('save')}
          </button>
        </div>
      </form>
    </div>
  )
}
