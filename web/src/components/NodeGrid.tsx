import { useState } from 'react'
import type { History } from '../history'
import { useI18n } from '../i18n'
import type { Worker, WorkerStatus } from '../types'
import { NodeCard } from './NodeCard'

/** A node's state as shown: silent nodes are offline whatever they last said. */
const statusOf = (w: Worker): WorkerStatus => (!w.alive || w.status === 'offline' ? 'offline' : w.status)

const STATUSES: WorkerStatus[] = ['busy', 'free', 'draining', 'paused', 'offline']
/** Paused and offline nodes take nothing from the queue: each its own group after the others. */
const GROUPED: WorkerStatus[] = ['paused', 'offline']
/** A group this small starts open; a larger one (a lab after hours) starts folded. */
const OPEN_GROUP_MAX = 12

type SortKey = 'name' | 'status' | 'cpu'
type Filter = 'all' | WorkerStatus

/** The coordinator's own node first, then by the chosen key, then by name (a stable order, so
 * cards do not jump around as nodes turn busy and free). */
function compare(key: SortKey) {
  return (a: Worker, b: Worker) =>
    Number(b.is_local) - Number(a.is_local) ||
    (key === 'status' ? STATUSES.indexOf(statusOf(a)) - STATUSES.indexOf(statusOf(b)) : 0) ||
    (key === 'cpu' ? b.cpu - a.cpu : 0) ||
    a.name.localeCompare(b.name)
}

interface NodeGridProps {
  workers: Worker[]
  history: History
  now: number
  /** No snapshot yet: say so instead of "no workers". */
  connecting?: boolean
  coordinatorVersion?: string
}

/** Every known node, searchable by name, filtered by state and sorted; paused and offline
 * nodes in groups of their own (folded when large), so a lab of 300 PCs stays readable. */
export function NodeGrid({ workers, history, now, connecting = false, coordinatorVersion }: NodeGridProps) {
  const { t } = useI18n()
  const [query, setQuery] = useState('')
  const [filter, setFilter] = useState<Filter>('all')
  const [sortKey, setSortKey] = useState<SortKey>('name')
  const [opened, setOpened] = useState<Partial<Record<WorkerStatus, boolean>>>({})

  const counts: Record<string, number> = {}
  for (const w of workers) counts[statusOf(w)] = (counts[statusOf(w)] ?? 0) + 1
  const needle = query.trim().toLowerCase()
  const shown = workers
    .filter((w) => (filter === 'all' || statusOf(w) === filter) && w.name.toLowerCase().includes(needle))
    .sort(compare(sortKey))
  const main = shown.filter((w) => !GROUPED.includes(statusOf(w)))

  const cards = (list: Worker[]) => (
    <div className="node-grid">
      {list.map((worker) => (
        <NodeCard
          key={worker.name}
          worker={worker}
          history={history.nodes[worker.name]}
          now={now}
          coordinatorVersion={coordinatorVersion}
        />
      ))}
    </div>
  )

  return (
    <section className="section" aria-labelledby="nodes-title">
      <h2 id="nodes-title" className="section-title">
        {t('nodes')}{' '}
        <span className="count" data-testid="node-count">
          {shown.length === workers.length ? workers.length : t('nodeShown', { shown: shown.length, total: workers.length })}
        </span>
      </h2>
      {connecting ? (
        <p className="empty card">
          <span className="spinner" aria-hidden="true" /> {t('connecting')}
        </p>
      ) : workers.length === 0 ? (
        <p className="empty card">
          {t('noNodes')} <code className="nowrap">sd-worker --async</code>
        </p>
      ) : (
        <>
          <div className="node-tools" role="search">
            <input
              type="search"
              className="node-search"
              placeholder={t('nodeSearch')}
              aria-label={t('nodeSearch')}
              value={query}
              onChange={(e) => setQuery(e.target.value)}
              data-testid="node-search"
            />
            <label>
              {t('nodeFilter')}{' '}
              <select value={filter} onChange={(e) => setFilter(e.target.value as Filter)} data-testid="node-filter">
                <option value="all">
                  {t('nodeFilterAll')} ({workers.length})
                </option>
                {STATUSES.map((s) => (
                  <option key={s} value={s}>
                    {t(`status_${s}`)} ({counts[s] ?? 0})
                  </option>
                ))}
              </select>
            </label>
            <label>
              {t('nodeSort')}{' '}
              <select value={sortKey} onChange={(e) => setSortKey(e.target.value as SortKey)} data-testid="node-sort">
                <option value="name">{t('nodeSortName')}</option>
                <option value="status">{t('nodeSortStatus')}</option>
                <option value="cpu">{t('nodeSortCpu')}</option>
              </select>
            </label>
          </div>
          {shown.length === 0 && <p className="empty card">{t('nodeNoMatch')}</p>}
          {main.length > 0 && cards(main)}
          {GROUPED.map((status) => {
            const group = shown.filter((w) => statusOf(w) === status)
            if (group.length === 0) return null
            const open = opened[status] ?? (filter === status || needle !== '' || group.length <= OPEN_GROUP_MAX)
            return (
              <details
                key={status}
                className={`node-group node-group-${status}`}
                open={open}
                data-testid={`node-group-${status}`}
                onToggle={(e) => {
                  const isOpen = e.currentTarget.open
                  if (isOpen !== open) setOpened((o) => ({ ...o, [status]: isOpen }))
                }}
              >
                <summary>
                  {t(status === 'paused' ? 'nodeGroupPaused' : 'nodeGroupOffline', { n: group.length })}
                </summary>
                {open && cards(group)}
              </details>
            )
          })}
        </>
      )}
    </section>
  )
}
