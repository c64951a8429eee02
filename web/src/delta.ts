/** The changes `GET /events` sends after its first snapshot, and applying them to it. */
import type { Snapshot, Worker } from './types'

export interface SnapshotDelta extends Partial<Omit<Snapshot, 'workers'>> {
  /** Changed fields by worker name (a whole worker when it is new). */
  workers: Record<string, Partial<Worker>>
  /** Names of workers no longer known. */
  gone: string[]
}

/** The snapshot `delta` leads to from `snapshot`. Unchanged workers keep their objects, so
 * memoised cards of nodes that did not change are not drawn again. */
export function applyDelta(snapshot: Snapshot, delta: SnapshotDelta): Snapshot {
  const { workers: changed, gone, ...rest } = delta
  const workers: Record<string, Worker> = { ...snapshot.workers }
  for (const name of gone ?? []) delete workers[name]
  for (const [name, fields] of Object.entries(changed ?? {})) {
    workers[name] = { ...workers[name], ...fields } as Worker
  }
  return { ...snapshot, ...rest, workers }
}
