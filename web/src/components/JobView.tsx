import { useEffect, useRef, useState } from 'react'
import { ApiError, cancelJob, fetchJob, fetchTasks, inputUrl, resultUrl, zipUrl } from '../api'
import { useToken } from '../auth'
import { formatClock, shortId } from '../format'
import { useI18n } from '../i18n'
import type { JobDetail, JobSummary, TaskDetail } from '../types'
import type { Sending } from '../upload'
import { CompareDialog } from './CompareDialog'
import { ErrorMessage } from './ErrorMessage'
import { ProgressBar } from './ProgressBar'
import { StatusPill } from './StatusPill'
import { TaskCard } from './TaskCard'
import { TaskOutputRow } from './TaskOutputRow'

const PAGE = 48
/** Task filters: a job of 20 000 tasks is read a page at a time, and its failures on their own. */
const FILTERS = ['all', 'failed', 'done', 'queued', 'cancelled'] as const
type Filter = (typeof FILTERS)[number]

/** The job's summary and the first `limit` tasks that pass `filter` (never every task). */
async function loadJob(jobId: string, filter: Filter, limit: number, signal: AbortSignal): Promise<JobDetail> {
  if (filter === 'all') return fetchJob(jobId, signal, limit)
  const [summary, page] = await Promise.all([fetchJob(jobId, signal, 0), fetchTasks(jobId, filter, limit, signal)])
  return { ...summary, tasks: page.tasks, tasks_next: page.next }
}
/** While a job runs, its tasks' states and workers change between counter changes too. */
const ACTIVE_REFRESH_S = 3

interface JobViewProps {
  jobId: string
  /** The job's line in the latest snapshot, when it is among the newest ones. */
  summary?: JobSummary
  now: number
  /** Files of this job still being uploaded by this page. */
  upload?: Sending
  onClose: () => void
}

/** One job in full: progress, downloads and every task with before/after previews. */
export function JobView({ jobId, summary, now, upload, onClose }: JobViewProps) {
  const { t, lang } = useI18n()
  const [job, setJob] = useState<JobDetail | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [shown, setShown] = useState(PAGE)
  const [comparing, setComparing] = useState<TaskDetail | null>(null)
  const [filter, setFilter] = useState<Filter>('all')
  const [cancelling, setCancelling] = useState(false)
  const [changed, setChanged] = useState(0)
  const token = useToken()
  const sectionRef = useRef<HTMLElement>(null)

  useEffect(() => {
    sectionRef.current?.scrollIntoView?.({ behavior: 'smooth', block: 'start' })
  }, [jobId])

  const active = summary ? summary.state === 'queued' || summary.state === 'running' || Boolean(summary.open) : false
  // Refetch when the pushed summary changes, not on a timer of our own.
  const version = summary
    ? `${summary.state}:${summary.done}:${summary.failed}:${active ? Math.floor(now / ACTIVE_REFRESH_S) : ''}`
    : ''

  useEffect(() => {
    const controller = new AbortController()
    loadJob(jobId, filter, shown, controller.signal)
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
  }, [jobId, version, token, filter, shown, changed])

  const head = job ?? summary
  const tasks = job?.tasks ?? []
  const isImage = (head?.kind ?? 'image') !== 'task'
  const canCancel = head ? head.state === 'queued' || head.state === 'running' || Boolean(head.open) : false
  const listed =
    !head ? 0 : { all: head.total, failed: head.failed, done: head.done, cancelled: head.cancelled ?? 0, queued: NaN }[filter]

  const cancel = async () => {
    setCancelling(true)
    try {
      await cancelJob(jobId)
      setChanged((n) => n + 1)
    } catch (err) {
      setError(err instanceof ApiError ? err.message : t('networkError'))
    } finally {
      setCancelling(false)
    }
  }

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
          {canCancel && (
            <button type="button" className="btn btn-secondary" onClick={cancel} disabled={cancelling} data-testid="cancel-job">
              {t('cancelJob')}
            </button>
          )}
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
            <span data-testid="job-progress-text">{t('progressText', { done: head.done, failed: head.failed, total: head.total })}</span>
            {Boolean(head.cancelled) && <span>{t('cancelledText', { n: head.cancelled ?? 0 })}</span>}
          </div>
          <ProgressBar done={head.done} failed={head.failed} total={head.total} label={t('job')} />
          {upload && (
            <div className="upload-progress" data-testid="job-upload-progress">
              <span>{t('uploading', { sent: upload.sent, total: upload.total })}</span>
              <ProgressBar done={upload.sent} failed={0} total={upload.total} label={t('uploadProgress')} />
            </div>
          )}
        </>
      )}

      {error && <ErrorMessage message={error} />}
      {!job && !error && <p className="muted">{t('loading')}</p>}

      {job && (
        <>
          <div className="job-tasks-head">
            <h3 className="subtitle">
              {t('tasks')}{' '}
              <span className="count" data-testid="task-count">
                {Number.isNaN(listed) ? tasks.length : listed}
              </span>
            </h3>
            <label className="field field-inline">
              <span>{t('showTasks')}</span>
              <select
                value={filter}
                onChange={(e) => {
                  setFilter(e.target.value as Filter)
                  setShown(PAGE)
                }}
                data-testid="task-filter"
              >
                {FILTERS.map((f) => (
                  <option key={f} value={f}>
                    {t(`filter_${f}`)}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <ul className={isImage ? 'task-grid' : 'task-rows'}>
            {tasks.map((task) =>
              isImage ? (
                <TaskCard key={task.task_id} task={task} onCompare={setComparing} />
              ) : (
                <TaskOutputRow key={task.task_id} task={task} />
              ),
            )}
          </ul>
          {job.tasks_next != null && (
            <button type="button" className="btn btn-ghost show-more" onClick={() => setShown(shown + PAGE)} data-testid="show-more">
              {t('showMore', { n: Number.isNaN(listed) ? PAGE : Math.min(PAGE, listed - tasks.length) })}
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
