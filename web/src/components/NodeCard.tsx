import { formatPercent, formatRate, shortId } from '../format'
import type { NodeHistory } from '../history'
import { useI18n, type Translate } from '../i18n'
import type { Worker } from '../types'
import { versionSkew } from '../version'
import { Metric } from './Metric'
import { StatusPill } from './StatusPill'

interface NodeCardProps {
  worker: Worker
  history?: NodeHistory
  /** Server time of the snapshot, so "last seen" does not depend on this machine's clock. */
  now: number
  /** The coordinator's version, to flag a worker on another release line. */
  coordinatorVersion?: string
}

const NO_HISTORY: NodeHistory = { cpu: [], ram: [], net: [] }

/** A worker node: status, live CPU / RAM / network with history, current task and counters. */
export function NodeCard({ worker, history = NO_HISTORY, now, coordinatorVersion }: NodeCardProps) {
  const { t } = useI18n()
  const skew = versionSkew(worker.version, coordinatorVersion)
  const status = worker.alive ? worker.status : 'offline'
  const offline = status === 'offline'
  return (
    <article
      className={`card node-card node-${status}`}
      data-testid={`node-card-${worker.name}`}
      data-status={status}
      aria-label={`${worker.name}: ${t(`status_${status}`)}`}
    >
      <header className="node-head">
        <span className={`dot dot-${status}`} aria-hidden="true" />
        <h3 className="node-name" title={worker.name}>
          {worker.name}
        </h3>
        <StatusPill kind="status" value={status} />
      </header>
      <div className="node-sub">
        <span className="node-ip">{worker.ip}</span>
        {worker.os && (
          <span className="node-os" title={t('osTitle')} data-testid="node-os">
            <span className="sr-only">{t('osTitle')}: </span>
            {worker.os}
          </span>
        )}
        {!offline && (
          <span className="node-link" title={t('linkTitle')} data-testid="node-link">
            {t('link', {
              ms: worker.rtt_ms == null ? '—' : Math.round(worker.rtt_ms),
              s: Math.max(0, now - worker.last_seen).toFixed(1),
            })}
          </span>
        )}
        {worker.is_local && (
          <span className="badge badge-coordinator" title={t('coordinatorTitle')} data-testid="coordinator-badge">
            {t('coordinator')}
          </span>
        )}
        <span
          className={`node-version${skew ? ' node-version-skew' : ''}`}
          data-testid="node-version"
          data-skew={skew}
          title={
            skew
              ? t('versionSkew', { worker: worker.version ?? '?', coordinator: coordinatorVersion ?? '?' })
              : t('workerVersion')
          }
        >
          {worker.version ? `v${worker.version}` : t('versionUnknown')}
          {skew && coordinatorVersion && ` ≠ v${coordinatorVersion}`}
        </span>
      </div>

      <div className="node-metrics">
        <Metric name="cpu" value={formatPercent(worker.cpu)} percent={worker.cpu} points={history.cpu} now={now} />
        <Metric name="ram" value={formatPercent(worker.ram)} percent={worker.ram} points={history.ram} now={now} />
        <Metric name="net" value={formatRate(worker.net)} points={history.net} now={now} />
      </div>

      <div className="node-task">
        {offline ? (
          <span className="last-seen" data-testid="last-seen">
            {lastSeen(t, now - worker.last_seen)}
          </span>
        ) : (
          <>
            <span className="muted">{t('currentTask')}</span>{' '}
            {worker.task_id ? (
              <code title={worker.task_id} data-testid="current-task">
                {shortId(worker.task_id)}
              </code>
            ) : status === 'paused' && worker.paused_for?.length ? (
              <span className="bad" data-testid="paused-for">
                {worker.paused_for.map((why) => t(`pausedFor_${why}`)).join(', ')}
              </span>
            ) : (
              <span className="muted">{t('idle')}</span>
            )}
          </>
        )}
      </div>

      <dl className="node-stats">
        <div>
          <dt title={t('consumers')}>{t('consumers')}</dt>
          <dd>{worker.consumers}</dd>
        </div>
        <div>
          <dt title={t('prefetch')}>{t('prefetch')}</dt>
          <dd>{worker.prefetch}</dd>
        </div>
        <div>
          <dt title={t('tasksDone')}>{t('tasksDone')}</dt>
          <dd data-testid="processed">{worker.processed}</dd>
        </div>
        <div>
          <dt title={t('tasksFailed')}>{t('tasksFailed')}</dt>
          <dd className={worker.failed ? 'bad' : ''}>{worker.failed ?? 0}</dd>
        </div>
      </dl>
    </article>
  )
}

/** "last seen 12 s ago", in minutes past two minutes and in hours past two hours. */
function lastSeen(t: Translate, agoS: number): string {
  const s = Math.max(0, Math.round(agoS))
  if (s < 120) return t('lastSeen', { n: s })
  if (s < 7200) return t('lastSeenMin', { n: Math.round(s / 60) })
  return t('lastSeenH', { n: Math.round(s / 3600) })
}
