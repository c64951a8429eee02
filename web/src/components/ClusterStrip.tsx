import { formatTps } from '../format'
import type { Point } from '../history'
import { useI18n } from '../i18n'
import type { Snapshot } from '../types'
import { StatTile } from './StatTile'
import { TpsChart } from './TpsChart'

/** The cluster at a glance: queue, throughput, live workers, tasks done and failed. */
export function ClusterStrip({ snapshot, tpsHistory }: { snapshot: Snapshot | null; tpsHistory: Point[] }) {
  const { t } = useI18n()
  const workers = Object.values(snapshot?.workers ?? {})
  const alive = workers.filter((w) => w.alive && w.status !== 'offline')
  const busy = alive.filter((w) => w.status === 'busy').length
  const dash = '—'
  return (
    <section className="cluster-strip" aria-label={t('cluster')}>
      <StatTile
        label={t('queue')}
        value={snapshot ? snapshot.queue_size : dash}
        hint={snapshot && t('queueHint', { running: snapshot.totals.running })}
        testId="queue-size"
      />
      <StatTile label={t('tps')} value={snapshot ? formatTps(snapshot.tps) : dash} testId="tps">
        <TpsChart points={tpsHistory} now={snapshot?.server_time ?? 0} />
      </StatTile>
      <StatTile
        label={t('workersAlive')}
        value={
          snapshot ? (
            <>
              {alive.length}
              <span className="stat-of"> / {workers.length}</span>
            </>
          ) : (
            dash
          )
        }
        hint={snapshot && t('workersHint', { busy })}
        testId="workers-alive"
      />
      <StatTile label={t('done')} value={snapshot ? snapshot.totals.done : dash} testId="tasks-done" tone="good" />
      <StatTile
        label={t('failed')}
        value={snapshot ? snapshot.totals.failed : dash}
        testId="tasks-failed"
        tone={snapshot?.totals.failed ? 'bad' : 'default'}
      />
    </section>
  )
}
