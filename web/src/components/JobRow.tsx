import { formatAge, percentDone, shortId } from '../format'
import { useI18n } from '../i18n'
import type { JobSummary } from '../types'
import { ProgressBar } from './ProgressBar'
import { StatusPill } from './StatusPill'

interface JobRowProps {
  job: JobSummary
  now: number
  selected: boolean
  onSelect: () => void
}

/** A job in the list: name, pipeline, age, state and live progress; selecting it opens the job view. */
export function JobRow({ job, now, selected, onSelect }: JobRowProps) {
  const { t } = useI18n()
  return (
    <li className={`job-row${selected ? ' is-selected' : ''}`} data-testid={`job-row-${job.job_id}`} data-state={job.state}>
      <button type="button" className="job-row-button" onClick={onSelect} aria-current={selected || undefined}>
        <span className="job-row-top">
          <span className="job-name" title={job.name}>
            {job.name || shortId(job.job_id)}
          </span>
          <StatusPill kind="state" value={job.state} />
        </span>
        <span className="job-row-meta">
          <code className="job-ops" title={job.ops}>
            {job.kind !== 'task' ? job.ops : t('kind_task')}
          </code>
          <span className="muted">{t('ago', { t: formatAge(now - job.created_at) })}</span>
        </span>
        <ProgressBar done={job.done} failed={job.failed} total={job.total} label={`${t('job')} ${shortId(job.job_id)}`} />
        <span className="job-row-counts">
          <span>
            {job.done + job.failed} / {job.total}
          </span>
          {job.failed > 0 && <span className="bad">✕ {job.failed}</span>}
          <span className="muted">{percentDone(job.done, job.total)} %</span>
        </span>
      </button>
    </li>
  )
}
