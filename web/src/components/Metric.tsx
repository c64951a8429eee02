import { HISTORY_WINDOW_S, type Point } from '../history'
import { useI18n } from '../i18n'
import { Sparkline } from './Sparkline'

interface MetricProps {
  name: 'cpu' | 'ram' | 'net'
  value: string
  /** 0..100 fill of the bar; omitted for values without a ceiling (network). */
  percent?: number
  points: Point[]
  now: number
}

/** One live value of a node: label, number, bar and its recent history. */
export function Metric({ name, value, percent, points, now }: MetricProps) {
  const { t } = useI18n()
  const label = t(name)
  return (
    <div className={`metric metric-${name}`}>
      <div className="metric-head">
        <span className="metric-label">{label}</span>
        <span className="metric-value" data-testid={`metric-${name}`}>
          {value}
        </span>
      </div>
      {percent !== undefined && (
        <div className="metric-bar" aria-hidden="true">
          <span style={{ width: `${Math.min(100, Math.max(0, percent))}%` }} />
        </div>
      )}
      <Sparkline
        points={points}
        now={now}
        windowS={HISTORY_WINDOW_S}
        max={percent !== undefined ? 100 : undefined}
        label={t('metricHistory', { metric: label, min: HISTORY_WINDOW_S / 60 })}
      />
    </div>
  )
}
