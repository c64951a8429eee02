import type { FormEvent, ReactNode } from 'react'
import { ErrorMessage } from '../components/ErrorMessage'
import { useAcademicText } from './messages'
import type { SaveState } from './useSave'

interface FormDialogProps {
  title: string
  testId: string
  save: SaveState
  onSubmit: () => void
  onCancel: () => void
  onReload?: () => void
  children: ReactNode
}

/** A modal form with save and cancel, the general error, and the "changed meanwhile" notice. */
export function FormDialog({ title, testId, save, onSubmit, onCancel, onReload, children }: FormDialogProps) {
  const t = useAcademicText()
  const submit = (event: FormEvent) => {
    event.preventDefault()
    onSubmit()
  }
  return (
    <div className="overlay">
      <form
        className="card dialog acad-dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby={`${testId}-title`}
        onSubmit={submit}
        data-testid={testId}
        noValidate
      >
        <h2 id={`${testId}-title`}>{title}</h2>
        <div className="acad-form-grid">{children}</div>
        {save.message && <ErrorMessage message={save.message} />}
        {save.stale && (
          <div className="message message-error" role="alert" data-testid="stale-message">
            {t('stale')}{' '}
            {onReload && (
              <button type="button" className="btn btn-small btn-secondary" onClick={onReload} data-testid="stale-reload">
                {t('reload')}
              </button>
            )}
          </div>
        )}
        <div className="dialog-actions">
          <button type="button" className="btn btn-ghost" onClick={onCancel}>
            {t('cancel')}
          </button>
          <button type="submit" className="btn btn-primary" disabled={save.saving} data-testid={`${testId}-save`}>
            {save.saving ? t('saving') : t('save')}
          </button>
        </div>
      </form>
    </div>
  )
}
