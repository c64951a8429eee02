import { percentDone } from '../format'
import { useI18n } from '../i18n'

interface ProgressBarProps {
  done: number
  failed: number
  total: number
  label: string
}

/** Done (green) and failed (red) parts of a job; `aria-valuenow` is the percent done. */
export function ProgressBar({ done, failed, total, label }: ProgressBarProps) {
  const { t } = useI18n()
  const share = (n: number) => (total > 0 ? (100 * n) / total : 0)
  return (
    <div
      className="progress"
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={percentDone(done, total)}
      aria-valuetext={t('progressText', { done, failed, total })}
      data-testid="progress"
    >
      <span className="progress-done" style={{ width: `${share(done)}%` }} />
      <span className="progress-failed" style={{ width: `${share(failed)}%` }} />
    </div>
  )
}
