import { useI18n } from '../i18n'
import type { JobSummary } from '../types'
import { JobRow } from './JobRow'

interface JobListProps {
  jobs: JobSummary[]
  now: number
  selectedId: string | null
  onSelect: (jobId: string) => void
}

/** The latest jobs, newest first, with progress that moves as the snapshots arrive. */
export function JobList({ jobs, now, selectedId, onSelect }: JobListProps) {
  const { t } = useI18n()
  return (
    <section className="card jobs" aria-labelledby="jobs-title">
      <h2 id="jobs-title" className="card-title">
        {t('jobs')} <span className="count">{jobs.length}</span>
      </h2>
      {jobs.length === 0 ? (
        <p className="empty">{t('noJobs')}</p>
      ) : (
        <ul className="job-list" data-testid="job-list">
          {jobs.map((job) => (
            <JobRow
              key={job.job_id}
              job={job}
              now={now}
              selected={job.job_id === selectedId}
              onSelect={() => onSelect(job.job_id)}
            />
          ))}
        </ul>
      )}
    </section>
  )
}
