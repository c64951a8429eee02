/** Live changes from `GET /academico/events`: calls `onChange` for every change anyone makes
 * (another browser, a CSV import, another program), and on (re)connection, when changes may
 * have been missed. */
import { useEffect, useRef } from 'react'
import { onTokenChange, withToken } from '../auth'

export interface AcademicEvent {
  type: string
  entity: 'profesor' | 'grupo'
  id: number
}

export function useAcademicEvents(onChange: (event: AcademicEvent | null) => void, path = '/academico/events'): void {
  const callback = useRef(onChange)
  callback.current = onChange

  useEffect(() => {
    let source: EventSource | null = null
    const connect = () => {
      source?.close()
      source = new EventSource(withToken(path))
      source.addEventListener('ready', () => callback.current(null))
      source.addEventListener('change', (event) => {
        try {
          callback.current(JSON.parse((event as MessageEvent<string>).data) as AcademicEvent)
        } catch {
          // Not JSON: nothing to show.
        }
      })
    }
    connect()
    const offToken = onTokenChange(connect)
    return () => {
      offToken()
      source?.close()
    }
  }, [path])
}
