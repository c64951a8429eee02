import { shortId } from '../format'
import { useI18n } from '../i18n'
import type { TaskDetail } from '../types'
import { RerunMark } from './RerunMark'
import { StatusPill } from './StatusPill'

/** A custom (non-image) task: state, worker and its JSON output or error. */
export function TaskOutputRow({ task }: { task: TaskDetail }) {
  const { t } = useI18n()
  return (
    <li className={`task-row task-${task.state}`} data-testid={`task-${task.task_id}`} data-state={task.state}>
      <code title={task.task_id}>{shortId(task.task_id)}</code>
      <StatusPill kind="state" value={task.state} />
      <span className="muted">{task.worker ?? '—'}</span>
      {task.rerun && <RerunMark task={task} />}
      {task.error ? (
        <p className="task-error">{task.error}</p>
      ) : (
        task.output != null && (
          <pre className="task-output" aria-label={t('output')}>
            {JSON.stringify(task.output, null, 2)}
          </pre>
        )
      )}
    </li>
  )
}
