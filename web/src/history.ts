/** A rolling window of the values the snapshots carried, for the sparklines and the TPS chart. */
import type { Snapshot } from './types'

export const HISTORY_WINDOW_S = 300

export interface Point {
  t: number
  v: number
}

export interface NodeHistory {
  cpu: Point[]
  ram: Point[]
  net: Point[]
}

export interface History {
  tps: Point[]
  nodes: Record<string, NodeHistory>
}

export const EMPTY_HISTORY: History = { tps: [], nodes: {} }

function push(series: Point[], point: Point, windowS: number): Point[] {
  const since = point.t - windowS
  const kept = series.filter((p) => p.t >= since && p.t < point.t)
  kept.push(point)
  return kept
}

/** The history with the snapshot's values appended and samples older than the window dropped. */
export function appendSnapshot(history: History, snapshot: Snapshot, windowS = HISTORY_WINDOW_S): History {
  const t = snapshot.server_time
  const nodes: Record<string, NodeHistory> = {}
  for (const worker of Object.values(snapshot.workers)) {
    const previous = history.nodes[worker.name] ?? { cpu: [], ram: [], net: [] }
    // An offline node's values are its last report repeated: keep the gap visible instead.
    nodes[worker.name] = worker.alive
      ? {
          cpu: push(previous.cpu, { t, v: worker.cpu }, windowS),
          ram: push(previous.ram, { t, v: worker.ram }, windowS),
          net: push(previous.net, { t, v: worker.net }, windowS),
        }
      : previous
  }
  return { tps: push(history.tps, { t, v: snapshot.tps }, windowS), nodes }
}
