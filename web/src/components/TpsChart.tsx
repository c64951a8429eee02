import { formatAge, formatTps } from '../format'
import { HISTORY_WINDOW_S, type Point } from '../history'
import { useI18n } from '../i18n'
import { chartSpan, Sparkline } from './Sparkline'

/** Round up to 1, 2 or 5 times a power of ten, so the scale reads cleanly. */
function niceCeil(value: number): number {
  if (value <= 1) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  const step = [1, 2, 5, 10].find((m) => m * power >= value) ?? 10
  return step * power
}

/** Tasks per second over the history window, with its scale. */
export function TpsChart({ points, now }: { points: Point[]; now: number }) {
  const { t } = useI18n()
  const top = niceCeil(Math.max(0, ...points.map((p) => p.v)))
  const minutes = HISTORY_WINDOW_S / 60
  const span = chartSpan(points, now, HISTORY_WINDOW_S)
  return (
    <div className="tps-chart">
      <span className="tps-scale" aria-hidden="true">
        {Number.isInteger(top) ? top : formatTps(top)}
      </span>
      <Sparkline
        points={points}
        now={now}
        windowS={HISTORY_WINDOW_S}
        max={top}
        height={44}
        className="sparkline-tps"
        label={t('tpsChart', { min: minutes })}
      />
      <span className="tps-axis" aria-hidden="true">
        <span>−{formatAge(span)}</span>
        <span>0</span>
      </span>
    </div>
  )
}
