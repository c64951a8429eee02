import type { Point } from '../history'

interface SparklineProps {
  points: Point[]
  /** Right edge of the chart (server time, unix seconds). */
  now: number
  windowS: number
  /** Top of the scale; by default the series' own maximum. */
  max?: number
  height?: number
  label: string
  className?: string
}

const WIDTH = 100

/** A tiny SVG line-and-area chart of a time series; stretches to its container's width. */
export function Sparkline({ points, now, windowS, max, height = 28, label, className = '' }: SparklineProps) {
  const top = max ?? Math.max(1e-9, ...points.map((p) => p.v)) * 1.15
  const x = (t: number) => (WIDTH * (t - (now - windowS))) / windowS
  const y = (v: number) => height - (Math.min(Math.max(v, 0), top) / top) * (height - 2) - 1
  const visible = points.filter((p) => p.t >= now - windowS)
  const line = visible.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(2)},${y(p.v).toFixed(2)}`).join('')
  const area =
    visible.length > 1 ? `${line}L${x(visible[visible.length - 1].t).toFixed(2)},${height}L${x(visible[0].t).toFixed(2)},${height}Z` : ''
  return (
    <svg
      className={`sparkline ${className}`}
      viewBox={`0 0 ${WIDTH} ${height}`}
      preserveAspectRatio="none"
      height={height}
      role="img"
      aria-label={label}
    >
      {area && <path className="sparkline-area" d={area} />}
      {visible.length > 1 && <path className="sparkline-line" d={line} vectorEffect="non-scaling-stroke" />}
    </svg>
  )
}
