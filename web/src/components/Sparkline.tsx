import type { Point } from '../history'

interface SparklineProps {
  points: Point[]
  /** Right edge of the chart (server time, unix seconds). */
  now: number
  /** Longest span shown; until that much history exists, the history there is fills the width. */
  windowS: number
  /** Top of the scale; by default the series' own maximum. */
  max?: number
  height?: number
  label: string
  className?: string
}

const WIDTH = 100
const MIN_SPAN_S = 30
const GAP_S = 5

/** Seconds of history the chart spans: all there is, at least 30 s, at most the window. */
export function chartSpan(points: Point[], now: number, windowS: number): number {
  const oldest = points.length ? points[0].t : now
  return Math.min(windowS, Math.max(MIN_SPAN_S, now - oldest))
}

/** A tiny SVG line-and-area chart of a time series; stretches to its container's width. */
export function Sparkline({ points, now, windowS, max, height = 28, label, className = '' }: SparklineProps) {
  const visible = points.filter((p) => p.t >= now - windowS)
  const span = chartSpan(visible, now, windowS)
  const top = max ?? Math.max(1e-9, ...visible.map((p) => p.v)) * 1.15
  const x = (t: number) => (WIDTH * (t - (now - span))) / span
  const y = (v: number) => height - (Math.min(Math.max(v, 0), top) / top) * (height - 2) - 1
  // A gap in the samples (the page was disconnected, the node was offline) stays a gap.
  const segments: Point[][] = []
  visible.forEach((p, i) => {
    if (i === 0 || p.t - visible[i - 1].t > GAP_S) segments.push([])
    segments[segments.length - 1].push(p)
  })
  const drawn = segments.filter((seg) => seg.length > 1)
  const path = (seg: Point[]) => seg.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(2)},${y(p.v).toFixed(2)}`).join('')
  const line = drawn.map(path).join('')
  const area = drawn
    .map((seg) => `${path(seg)}L${x(seg[seg.length - 1].t).toFixed(2)},${height}L${x(seg[0].t).toFixed(2)},${height}Z`)
    .join('')
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
      {line && <path className="sparkline-line" d={line} vectorEffect="non-scaling-stroke" />}
    </svg>
  )
}
