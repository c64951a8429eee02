/** Saving a form: field-by-field reasons from a 422/409, the stale state of a 412. */
import { useState } from 'react'
import { AcademicError } from './api'

export interface SaveState {
  saving: boolean
  fieldErrors: Record<string, string>
  message: string | null
  stale: boolean
  run: (save: () => Promise<void>) => Promise<void>
  reset: () => void
}

export function useSave(networkError: string): SaveState {
  const [saving, setSaving] = useState(false)
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({})
  const [message, setMessage] = useState<string | null>(null)
  const [stale, setStale] = useState(false)

  const reset = () => {
    setFieldErrors({})
    setMessage(null)
    setStale(false)
  }

  const run = async (save: () => Promise<void>) => {
    reset()
    setSaving(true)
    try {
      await save()
    } catch (err) {
      if (err instanceof AcademicError) {
        if (err.status === 412) setStale(true)
        const byField = Object.fromEntries(err.errors.map((e) => [e.field, e.reason]))
        setFieldErrors(byField)
        if (err.status !== 412 && err.errors.length === 0) setMessage(err.message)
      } else {
        setMessage(networkError)
      }
    } finally {
      setSaving(false)
    }
  }

  return { saving, fieldErrors, message, stale, run, reset }
}
