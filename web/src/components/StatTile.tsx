import type { ReactNode } from 'react'

interface StatTileProps {
  label: string
  value: ReactNode
  hint?: ReactNode
  testId: string
  tone?: 'default' | 'good' | 'bad'
  children?: ReactNode
}

/** One number of the cluster strip, with an optional hint line and chart. */
export function StatTile({ label, value, hint, testId, tone = 'default', children }: StatTileProps) {
  return (
    <div className={`card stat-tile tone-${tone}`}>
      <div className="stat-label">{label}</div>
      <div className="stat-value" data-testid={testId}>
        {value}
      </div>
      {hint && <div className="stat-hint">{hint}</div>}
      {children}
    </div>
  )
}
