import { useState } from 'react'
import { ErrorMessage } from '../components/ErrorMessage'
import { AcademicError, deleteRecord, type Kind } from './api'
import { useAcademicText } from './messages'

interface ConfirmDeleteProps {
  kind: Kind
  id: number
  version: number
  name: string
  onDone: () => void
}

/** "Delete X?" — and, for a profesor who still teaches, the choice to unassign their grupos. */
export function ConfirmDelete({ kind, id, version, name, onDone }: ConfirmDeleteProps) {
  const t = useAcademicText()
  const [teaches, setTeaches] = useState<string | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  const remove = async (unassign: boolean) => {
    setBusy(true)
    setError(null)
    try {
      await deleteRecord(kind, id, version, unassign)
      onDone()
    } catch (err) {
      if (err instanceof AcademicError && err.status === 409 && kind === 'profesores') setTeaches(err.message)
      else setError(err instanceof AcademicError ? err.message : t('networkError'))
    } finally {
      setBusy(false)
    }
  }

  const count = teaches?.match(/teaches (\d+)/)?.[1] ?? '?'
  return (
    <div className="overlay">
      <div className="card dialog" role="alertdialog" aria-modal="true" aria-labelledby="confirm-title" data-testid="confirm-delete">
        <h2 id="confirm-title">{t('confirmTitle')}</h2>
        <p>{t(kind === 'profesores' ? 'confirmProfesor' : 'confirmGrupo', { name })}</p>
        {teaches && (
          <p className="message message-error" role="alert" data-testid="teaches-message">
            {t('teaches', { name, n: count })}
          </p>
        )}
        {error && <ErrorMessage message={error} />}
        <div className="dialog-actions">
          <button type="button" className="btn btn-ghost" onClick={onDone}>
            {t('cancel')}
          </button>
          {teaches ? (
            <button type="button" className="btn btn-primary btn-danger" disabled={busy} onClick={() => void remove(true)} data-testid="confirm-unassign">
              {t('deleteAndUnassign')}
            </button>
          ) : (
            <button type="button" className="btn btn-primary btn-danger" disabled={busy} onClick={() => void remove(false)} data-testid="confirm-delete-button">
              {t('delete')}
            </button>
          )}
        </div>
      </div>
    </div>
  )
}
