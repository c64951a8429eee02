/** The coordinator's live state, pushed over Server-Sent Events (`GET /events`). */
import { useEffect, useState } from 'react'
import { onTokenChange, reportUnauthorized, withToken } from './auth'
import { applyDelta, type SnapshotDelta } from './delta'
import { appendSnapshot, EMPTY_HISTORY, type History } from './history'
import type { Snapshot } from './types'

export type Connection = 'connecting' | 'live' | 'disconnected'

export interface SnapshotState {
  snapshot: Snapshot | null
  history: History
  connection: Connection
}

const EVENTSOURCE_CLOSED = 2
/** Snapshots come every second; this long without one means the link is dead even if no error fired. */
export const STALE_AFTER_MS = 6000
const MAX_RETRY_MS = 10000

/** Whether the stream fails because the coordinator wants a token (EventSource cannot tell). */
async function answersUnauthorized(url: string): Promise<boolean> {
  const controller = new AbortController()
  try {
    const response = await fetch(url, { signal: controller.signal, headers: { Accept: 'text/event-stream' } })
    return response.status === 401
  } catch {
    return false
  } finally {
    controller.abort()
  }
}

export function useSnapshot(path = '/events'): SnapshotState {
  const [state, setState] = useState<SnapshotState>({ snapshot: null, history: EMPTY_HISTORY, connection: 'connecting' })

  useEffect(() => {
    let source: EventSource | null = null
    let retryTimer: ReturnType<typeof setTimeout> | undefined
    let retryMs = 1000
    let lastSnapshotAt = Date.now()
    let stopped = false

    const markDisconnected = () =>
      setState((s) => (s.connection === 'disconnected' ? s : { ...s, connection: 'disconnected' }))

    const onSnapshot = (event: MessageEvent<string>) => {
      let snapshot: Snapshot
      try {
        snapshot = JSON.parse(event.data) as Snapshot
      } catch {
        return
      }
      lastSnapshotAt = Date.now()
      retryMs = 1000
      setState((s) => ({ snapshot, history: appendSnapshot(s.history, snapshot), connection: 'live' }))
    }

    // After the first snapshot the stream sends what changed: applied to the last snapshot.
    const onDelta = (event: MessageEvent<string>) => {
      let delta: SnapshotDelta
      try {
        delta = JSON.parse(event.data) as SnapshotDelta
      } catch {
        return
      }
      lastSnapshotAt = Date.now()
      retryMs = 1000
      setState((s) => {
        if (s.snapshot === null) return s
        const snapshot = applyDelta(s.snapshot, delta)
        return { snapshot, history: appendSnapshot(s.history, snapshot), connection: 'live' }
      })
    }

    const connect = () => {
      clearTimeout(retryTimer)
      source?.close()
      lastSnapshotAt = Date.now()
      const url = withToken(path)
      const es = new EventSource(url)
      source = es
      es.addEventListener('snapshot', onSnapshot as EventListener)
      es.addEventListener('delta', onDelta as EventListener)
      es.onmessage = onSnapshot
      es.onerror = () => {
        markDisconnected()
        // EventSource retries network errors by itself but gives up on an HTTP error (401, a
        // proxy's 502 while the coordinator restarts): then reconnecting is up to us.
        if (es.readyState === EVENTSOURCE_CLOSED && !stopped) {
          es.close()
          void answersUnauthorized(url).then((unauthorized) => unauthorized && !stopped && reportUnauthorized())
          retryTimer = setTimeout(connect, retryMs)
          retryMs = Math.min(MAX_RETRY_MS, retryMs * 2)
        }
      }
    }

    // A half-open connection (a node dropped off the VPN) never errors: notice the silence.
    const watchdog = setInterval(() => {
      if (Date.now() - lastSnapshotAt > STALE_AFTER_MS) {
        markDisconnected()
        connect()
      }
    }, 1000)

    connect()
    const offToken = onTokenChange(connect)
    return () => {
      stopped = true
      offToken()
      clearInterval(watchdog)
      clearTimeout(retryTimer)
      source?.close()
    }
  }, [path])

  return state
}
