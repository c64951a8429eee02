/** The job shown in the job view, kept in the URL hash (`#job=<id>`) so a reload keeps it. */
import { useCallback, useEffect, useState } from 'react'

function jobFromHash(): string | null {
  const match = /^#job=(.+)$/.exec(window.location.hash)
  return match ? decodeURIComponent(match[1]) : null
}

export function useSelectedJob(): [string | null, (jobId: string | null) => void] {
  const [jobId, setJobId] = useState<string | null>(jobFromHash)

  useEffect(() => {
    const onHashChange = () => setJobId(jobFromHash())
    window.addEventListener('hashchange', onHashChange)
    return () => window.removeEventListener('hashchange', onHashChange)
  }, [])

  const select = useCallback((next: string | null) => {
    setJobId(next)
    const hash = next ? `#job=${encodeURIComponent(next)}` : ''
    history.replaceState(null, '', `${window.location.pathname}${window.location.search}${hash}`)
  }, [])

  return [jobId, select]
}
