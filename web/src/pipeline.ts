/** The ops pipeline as steps, and its `name` / `name:arg` comma-separated string form. */
import { clamp } from './format'
import type { OpSpec } from './types'

export interface Step {
  id: number
  name: string
  arg: number | null
}

let nextId = 1
export const newStepId = (): number => nextId++

export function stepsToOps(steps: Step[]): string {
  return steps.map((step) => (step.arg == null ? step.name : `${step.name}:${formatArg(step.arg)}`)).join(',')
}

function formatArg(arg: number): string {
  // Floats like 0.1 + 0.2 must not reach the API as 0.30000000000000004.
  return String(Number(arg.toFixed(4)))
}

/** The value clamped into the op's range and rounded for an int arg; null for an op without arg. */
export function clampArg(spec: OpSpec, value: number): number | null {
  if (spec.arg == null) return null
  let v = Number.isFinite(value) ? value : (spec.default ?? spec.min ?? 0)
  if (spec.type === 'int') v = Math.round(v)
  return clamp(v, spec.min ?? -Infinity, spec.max ?? Infinity)
}

export function newStep(spec: OpSpec): Step {
  return { id: newStepId(), name: spec.name, arg: spec.arg == null ? null : clampArg(spec, spec.default ?? spec.min ?? 0) }
}

export interface ParsedOps {
  steps: Step[]
  /** Steps the builder cannot show: unknown names or args that are not numbers. */
  invalid: string[]
}

/** Reads an ops string into steps, reporting the parts that do not match a known op. */
export function parseOps(text: string, specs: OpSpec[]): ParsedOps {
  const byName = new Map(specs.map((spec) => [spec.name, spec]))
  const steps: Step[] = []
  const invalid: string[] = []
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [name, rawArg] = part.split(':', 2).map((p) => p.trim())
    const spec = byName.get(name)
    if (!spec) {
      invalid.push(part)
      continue
    }
    if (spec.arg == null) {
      if (rawArg !== undefined) invalid.push(part)
      else steps.push({ id: newStepId(), name, arg: null })
      continue
    }
    const arg = rawArg === undefined ? (spec.default ?? null) : Number(rawArg)
    if (arg == null || rawArg === '' || !Number.isFinite(arg)) invalid.push(part)
    else steps.push({ id: newStepId(), name, arg })
  }
  return { steps, invalid }
}
