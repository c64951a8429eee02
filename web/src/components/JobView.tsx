import { useEffect, useRef, useState } from 'react'
import { ApiError, fetchJob, inputUrl, resultUrl, zipUrl } from '../api'
import { useToken } from '../auth'
import { formatClock, shortId } from '../format'
import { useI18n } from '../i18n'
import type { JobDetail, JobSummary, TaskDetail } from '../types'
import { CompareDialog } from './CompareDialog'
import { ErrorMessage } from './ErrorMessage'
import { ProgressBar } from './ProgressBar'
import { StatusPill } from './StatusPill'
import { TaskCard } from './TaskCard'
import { TaskOutputRow } from './TaskOutputRow'

const PAGE = 48
/** While a job runs, its tasks' states and workers change between counter changes too. */
const ACTIVE_REFRESH_S = 3

interface JobViewProps {
  jobId: string
  /** The job's line in the latest snapshot, when it is among the newest ones. */
  summary?: JobSummary
  now: number
  onClose: () => void
}

/** One job in full: progress, downloads and every task with before/after previews. */
export function JobView({ jobId, summary, now, onClose }: JobViewProps) {
  const { t, lang } = useI18n()
  const [job, setJob] = useState<JobDetail | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [shown, setShown] = useState(PAGE)
  const [comparing, setComparing] = useState<TaskDetail | null>(null)
  const token = useToken()
  const sectionRef = useRef<HTMLElement>(null)

  useEffect(() => {
    sectionRef.current?.scrollIntoView?.({ behavior: 'smooth', block: 'start' })
  }, [jobId])

  const active = summary ? summary.state === 'queued' || summary.state === 'running' : false
  // Refetch when the pushed summary changes, not on a timer of our own.
  const version = summary
    ? `${summary.state}:${summary.done}:${summary.failed}:${active ? Math.floor(now / ACTIVE_REFRESH_S) : ''}`
    : ''

  useEffect(() => {
    const controller = new AbortController()
    fetchJob(jobId, controller.signal)
      .then((detail) => {
        setJob(detail)
        setError(null)
      })
      .catch((err: unknown) => {
        if (controller.signal.aborted) return
        setError(err instanceof ApiError ? (err.status === 404 ? t('jobNotFound') : err.message) : t('networkError'))
      })
    return () => controller.abort()
    // t only changes the wording of an error already shown.
  }, [jobId, version, token])

  const head = job ?? summary
  const tasks = job?.tasks ?? []
  const isImage = (head?.kind ?? 'image') === 'image'

  return (
    <section ref={sectionRef} className="card job-view" aria-labelledby="job-view-title" data-testid="job-view" data-job-id={jobId}>
      <div className="job-view-head">
        <div className="job-view-title">
          <h2 id="job-view-title" className="card-title">
            {head?.name || `${t('job')} ${shortId(jobId)}`}
          </h2>
          {head && <StatusPill kind="state" value={head.state} />}
        </div>
        <div className="job-view-actions">
          {isImage && head && head.done > 0 && (
            <a className="btn btn-secondary" href={zipUrl(jobId)} download data-testid="zip-link">
              <span aria-hidden="true">↓</span> {t('downloadZip')}
            </a>
          )}
          <button type="button" className="icon-btn" aria-label={t('closeJob')} onClick={onClose}>
            ✕
          </button>
        </div>
      </div>

      {head && (
        <>
          <div className="job-view-meta">
            <code title={jobId}>{shortId(jobId)}</code>
            {head.ops && <code className="job-ops">{head.ops}</code>}
            <span className="muted">{formatClock(head.created_at, lang)}</span>
            <span>{t('progressText', { done: head.done, failed: head.failed, total: head.total })}</span>
          </div>
          <ProgressBar done={head.done} failed={head.failed} total={head.total} label={t('job')} />
        </>
      )}

      {error && <ErrorMessage message={error} />}
      {!job && !error && <p className="muted">{t('loading')}</p>}

      {job && (
        <>
          <h3 className="subtitle">
            {t('tasks')} <span className="count">{tasks.length}</span>
          </h3>
          <ul className={isImage ? 'task-grid' : 'task-rows'}>
            {tasks
              .slice(0, shown)
              .map((task) =>
                isImage ? (
                  <TaskCard key={task.task_id} task={task} onCompare={setComparing} />
                ) : (
                  <TaskOutputRow key={task.task_id} task={task} />
                ),
              )}
          </ul>
          {tasks.length > shown && (
            <button type="button" className="btn btn-ghost show-more" onClick={() => setShown(shown + PAGE)}>
              {t('showMore', { n: Math.min(PAGE, tasks.length - shown) })}
            </button>
          )}
        </>
      )}

      {comparing && (
        <CompareDialog
          name={comparing.filename ?? shortId(comparing.task_id)}
          before={comparing.input ? inputUrl(comparing.input) : null}
          after={comparing.result ? resultUrl(comparing.result) : null}
          onClose={() => setComparing(null)}
        />
      )}
    </section>
  )
}
