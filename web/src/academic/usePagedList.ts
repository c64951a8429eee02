/** One page of a list, fetched again whenever its parameters or `refresh` change. */
import { useEffect, useState } from 'react'
import { AcademicError, listRecords, type Kind, type Page } from './api'

export interface PagedList<T> {
  data: Page<T> | null
  error: string | null
}

export function usePagedList<T>(
  kind: Kind,
  params: Record<string, string | number | null | undefined>,
  refresh: number,
): PagedList<T> {
  const [state, setState] = useState<PagedList<T>>({ data: null, error: null })
  const key = JSON.stringify(params)
  useEffect(() => {
    let cancelled = false
    listRecords<T>(kind, JSON.parse(key) as typeof params)
      .then((data) => !cancelled && setState({ data, error: null }))
      .catch((err: unknown) => {
        if (!cancelled) setState((s) => ({ ...s, error: err instanceof AcademicError ? err.message : String(err) }))
      })
    return () => {
      cancelled = true
    }
  }, [kind, key, refresh])
  return state
}
