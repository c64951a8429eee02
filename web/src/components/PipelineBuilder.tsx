import { useState } from 'react'
import { useI18n } from '../i18n'
import { newStep, parseOps, stepsToOps, type Step } from '../pipeline'
import type { OpSpec } from '../types'
import { StepRow } from './StepRow'

interface PipelineBuilderProps {
  specs: OpSpec[]
  /** Whether /ops could not be loaded: the ops string is then typed by hand. */
  specsFailed?: boolean
  steps: Step[]
  opsText: string
  onChange: (steps: Step[], opsText: string) => void
}

/** Builds the `ops` string from the supported ops; the string itself stays editable. */
export function PipelineBuilder({ specs, specsFailed = false, steps, opsText, onChange }: PipelineBuilderProps) {
  const { t, lang } = useI18n()
  const [toAdd, setToAdd] = useState('')
  const byName = new Map(specs.map((spec) => [spec.name, spec]))
  const selected = byName.get(toAdd) ?? specs[0]
  const invalid = specs.length ? parseOps(opsText, specs).invalid : []

  const setSteps = (next: Step[]) => onChange(next, stepsToOps(next))
  const onText = (text: string) => {
    const parsed = parseOps(text, specs)
    // Text the builder cannot represent keeps the old steps; the API will say what is wrong.
    onChange(parsed.invalid.length ? steps : parsed.steps, text)
  }
  const move = (index: number, delta: -1 | 1) => {
    const next = [...steps]
    const [step] = next.splice(index, 1)
    next.splice(index + delta, 0, step)
    setSteps(next)
  }

  return (
    <fieldset className="pipeline" data-testid="pipeline-builder">
      <legend>{t('pipeline')}</legend>
      {specs.length > 0 && (
        <div className="pipeline-add">
          <select
            value={selected?.name ?? ''}
            onChange={(e) => setToAdd(e.target.value)}
            aria-label={t('opToAdd')}
            data-testid="op-select"
          >
            {specs.map((spec) => (
              <option key={spec.name} value={spec.name}>
                {spec.name}
                {spec.arg ? `:${spec.arg}` : ''} — {lang === 'es' ? spec.description_es : spec.description_en}
              </option>
            ))}
          </select>
          <button
            type="button"
            className="btn btn-secondary"
            onClick={() => selected && setSteps([...steps, newStep(selected)])}
            data-testid="add-step"
          >
            <span aria-hidden="true">+</span> {t('addStep')}
          </button>
        </div>
      )}
      {specsFailed && <p className="hint hint-warn">{t('opsUnavailable')}</p>}

      {steps.length > 0 ? (
        <ol className="steps">
          {steps.map((step, index) => (
            <StepRow
              key={step.id}
              step={step}
              index={index}
              count={steps.length}
              spec={byName.get(step.name)}
              onArg={(arg) => setSteps(steps.map((s) => (s.id === step.id ? { ...s, arg } : s)))}
              onMove={(delta) => move(index, delta)}
              onRemove={() => setSteps(steps.filter((s) => s.id !== step.id))}
            />
          ))}
        </ol>
      ) : (
        specs.length > 0 && <p className="hint">{t('emptyPipeline')}</p>
      )}

      <label className="field field-ops">
        <span>{t('opsString')}</span>
        <input
          type="text"
          value={opsText}
          spellCheck={false}
          autoComplete="off"
          onChange={(e) => onText(e.target.value)}
          data-testid="ops-input"
        />
      </label>
      {invalid.map((part) => (
        <p key={part} className="hint hint-warn">
          {t('unknownOp', { name: part })}
        </p>
      ))}
    </fieldset>
  )
}
