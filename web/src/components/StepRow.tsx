import { useEffect, useState } from 'react'
import { useI18n } from '../i18n'
import { clampArg, type Step } from '../pipeline'
import type { OpSpec } from '../types'

interface StepRowProps {
  step: Step
  index: number
  count: number
  spec: OpSpec | undefined
  onArg: (arg: number | null) => void
  onMove: (delta: -1 | 1) => void
  onRemove: () => void
}

/** One step of the pipeline: its op, its argument (kept within the op's range) and controls. */
export function StepRow({ step, index, count, spec, onArg, onMove, onRemove }: StepRowProps) {
  const { t, lang } = useI18n()
  const n = index + 1
  // The field shows what is typed; the step holds the clamped value, shown again on blur.
  const [draft, setDraft] = useState(step.arg == null ? '' : String(step.arg))
  useEffect(() => setDraft(step.arg == null ? '' : String(step.arg)), [step.arg])

  const description = spec ? (lang === 'es' ? spec.description_es : spec.description_en) : ''
  const commit = (text: string) => {
    if (!spec || text.trim() === '' || !Number.isFinite(Number(text))) return
    onArg(clampArg(spec, Number(text)))
  }

  return (
    <li className="step" data-testid={`step-${index}`}>
      <span className="step-index" aria-hidden="true">
        {n}
      </span>
      <div className="step-body">
        <span className="step-name">{step.name}</span>
        {description && <span className="step-desc">{description}</span>}
      </div>
      {spec?.arg && (
        <label className="step-arg">
          <span className="step-arg-name">{spec.arg}</span>
          <input
            type="number"
            inputMode={spec.type === 'int' ? 'numeric' : 'decimal'}
            min={spec.min ?? undefined}
            max={spec.max ?? undefined}
            step={spec.type === 'int' ? 1 : 0.1}
            value={draft}
            aria-label={t('argOf', { arg: spec.arg, n, op: step.name })}
            data-testid={`step-arg-${index}`}
            onChange={(e) => {
              setDraft(e.target.value)
              commit(e.target.value)
            }}
            onBlur={() => setDraft(step.arg == null ? '' : String(step.arg))}
          />
        </label>
      )}
      <div className="step-actions">
        <button
          type="button"
          className="icon-btn"
          aria-label={t('moveUp', { n })}
          disabled={index === 0}
          onClick={() => onMove(-1)}
        >
          ↑
        </button>
        <button
          type="button"
          className="icon-btn"
          aria-label={t('moveDown', { n })}
          disabled={index === count - 1}
          onClick={() => onMove(1)}
        >
          ↓
        </button>
        <button type="button" className="icon-btn icon-btn-danger" aria-label={t('removeStep', { n, op: step.name })} onClick={onRemove}>
          ✕
        </button>
      </div>
    </li>
  )
}
