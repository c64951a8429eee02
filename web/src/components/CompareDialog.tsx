import { useEffect, useState } from 'react'
import { useI18n } from '../i18n'

interface CompareDialogProps {
  name: string
  before: string | null
  after: string | null
  onClose: () => void
}

/** Before and after stacked, split by a slider; Escape or the button closes it. */
export function CompareDialog({ name, before, after, onClose }: CompareDialogProps) {
  const { t } = useI18n()
  const [split, setSplit] = useState(50)

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => event.key === 'Escape' && onClose()
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [onClose])

  return (
    <div className="overlay" onClick={onClose}>
      <div
        className="card dialog compare"
        role="dialog"
        aria-modal="true"
        aria-label={t('compare', { name })}
        onClick={(e) => e.stopPropagation()}
        data-testid="compare-dialog"
      >
        <div className="compare-head">
          <h2>{name}</h2>
          <button type="button" className="icon-btn" aria-label={t('close')} onClick={onClose} autoFocus>
            ✕
          </button>
        </div>
        <div className="compare-stage">
          {after && <img src={after} alt={t('after')} />}
          {before && (
            <img
              src={before}
              alt={t('before')}
              className="compare-before"
              style={after ? { clipPath: `inset(0 ${100 - split}% 0 0)` } : undefined}
            />
          )}
          {before && after && <span className="compare-line" style={{ left: `${split}%` }} aria-hidden="true" />}
        </div>
        {before && after && (
          <div className="compare-controls">
            <span>{t('before')}</span>
            <input
              type="range"
              min={0}
              max={100}
              value={split}
              onChange={(e) => setSplit(Number(e.target.value))}
              aria-label={t('compareSlider')}
            />
            <span>{t('after')}</span>
          </div>
        )}
      </div>
    </div>
  )
}
