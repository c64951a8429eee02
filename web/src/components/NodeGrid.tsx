import type { History } from '../history'
import { useI18n } from '../i18n'
import type { Worker } from '../types'
import { NodeCard } from './NodeCard'

/** Every known node: live ones first, the coordinator's own first, then by name (a stable order,
 * so cards do not jump around as nodes turn busy and free). */
const isOffline = (w: Worker): boolean => !w.alive || w.status === 'offline'

interface NodeGridProps {
  workers: Worker[]
  history: History
  now: number
  /** No snapshot yet: say so instead of "no workers". */
  connecting?: boolean
  coordinatorVersion?: string
}

export function NodeGrid({ workers, history, now, connecting = false, coordinatorVersion }: NodeGridProps) {
  const { t } = useI18n()
  const sorted = [...workers].sort(
    (a, b) =>
      Number(isOffline(a)) - Number(isOffline(b)) ||
      Number(b.is_local) - Number(a.is_local) ||
      a.name.localeCompare(b.name),
  )
  return (
    <section className="section" aria-labelledby="nodes-title">
      <h2 id="nodes-title" className="section-title">
        {t('nodes')} <span className="count">{workers.length}</span>
      </h2>
      {connecting ? (
        <p className="empty card">
          <span className="spinner" aria-hidden="true" /> {t('connecting')}
        </p>
      ) : sorted.length === 0 ? (
        <p className="empty card">
          {t('noNodes')} <code className="nowrap">sd-worker --async</code>
        </p>
      ) : (
        <div className="node-grid">
          {sorted.map((worker) => (
            <NodeCard
              key={worker.name}
              worker={worker}
              history={history.nodes[worker.name]}
              now={now}
              coordinatorVersion={coordinatorVersion}
            />
          ))}
        </div>
      )}
    </section>
  )
}
