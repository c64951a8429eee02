import { useI18n, type Translate } from '../i18n'
import type { TaskDetail } from '../types'

/** Marks a task that ran again elsewhere because its host was lost or lagged. */
export function RerunMark({ task }: { task: TaskDetail }) {
  const { t } = useI18n()
  return (
    <span className="badge badge-rerun" title={t('rerunTitle')} data-testid={`task-rerun-${task.task_id}`}>
      {rerunText(t, task.rerun ?? '')}
    </span>
  )
}

/** The coordinator's reason ("host lost: h3", "straggler: h2", "host lost") in the page's language. */
function rerunText(t: Translate, reason: string): string {
  const [kind, name] = reason.split(': ', 2)
  if (kind === 'host lost') return name ? t('rerunLost', { name }) : t('rerunLostUnknown')
  if (kind === 'straggler' && name) return t('rerunStraggler', { name })
  return t('rerun', { reason })
}
