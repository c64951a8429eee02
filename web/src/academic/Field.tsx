import type { ReactNode } from 'react'
import { useI18n } from '../i18n'
import { localizeReason } from './messages'

interface FieldProps {
  name: string
  label: string
  error?: string
  children: (props: { id: string; 'aria-invalid': boolean; 'aria-describedby'?: string }) => ReactNode
}

/** A labelled input with the service's reason for refusing it shown right below (in Spanish
 * when the page is, for the reasons `localizeReason` knows). */
export function Field({ name, label, error, children }: FieldProps) {
  const { lang } = useI18n()
  const id = `acad-field-${name}`
  const errorId = `${id}-error`
  return (
    <div className={`field acad-field${error ? ' has-error' : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children({ id, 'aria-invalid': Boolean(error), 'aria-describedby': error ? errorId : undefined })}
      {error && (
        <span className="acad-field-error" id={errorId} role="alert" data-testid={`error-${name}`}>
          {localizeReason(lang, error)}
        </span>
      )}
    </div>
  )
}
