import { inputUrl, resultUrl } from '../api'
import { shortId } from '../format'
import { useI18n } from '../i18n'
import type { TaskDetail } from '../types'
import { RerunMark } from './RerunMark'
import { StatusPill } from './StatusPill'

interface TaskCardProps {
  task: TaskDetail
  onCompare: (task: TaskDetail) => void
}

/** An image task: before/after previews, state, worker, error and the result download. */
export function TaskCard({ task, onCompare }: TaskCardProps) {
  const { t } = useI18n()
  const title = task.filename ?? shortId(task.task_id)
  const before = task.input ? inputUrl(task.input) : null
  const after = task.result ? resultUrl(task.result) : null
  return (
    <li className={`task-card task-${task.state}`} data-testid={`task-${task.task_id}`} data-state={task.state}>
      <button
        type="button"
        className="task-previews"
        onClick={() => onCompare(task)}
        disabled={!before && !after}
        aria-label={t('compare', { name: title })}
      >
        <figure>
          {before ? <img src={before} alt={t('before')} loading="lazy" /> : <span className="preview-empty" />}
          <figcaption>{t('before')}</figcaption>
        </figure>
        <figure>
          {after ? (
            <img src={after} alt={t('after')} loading="lazy" />
          ) : (
            <span className={`preview-empty preview-${task.state}`}>
              {task.state === 'failed' ? '✕' : <span className="spinner" aria-hidden="true" />}
            </span>
          )}
          <figcaption>{t('after')}</figcaption>
        </figure>
      </button>
      <div className="task-info">
        <span className="task-title" title={task.filename ?? task.task_id}>
          {title}
        </span>
        <StatusPill kind="state" value={task.state} />
      </div>
      <div className="task-meta">
        <span className="muted">{t('worker')}</span>
        <span className="task-worker" title={task.worker ?? undefined}>
          {task.worker ?? '—'}
        </span>
      </div>
      {task.rerun && <RerunMark task={task} />}
      {task.result && (
        <a
          className="btn btn-secondary btn-small task-download"
          href={resultUrl(task.result)}
          download={task.result}
          data-testid={`result-link-${task.task_id}`}
        >
          <span aria-hidden="true">↓</span> {t('download')}
        </a>
      )}
      {task.error && (
        <p className="task-error" data-testid={`task-error-${task.task_id}`}>
          {task.error}
        </p>
      )}
    </li>
  )
}
