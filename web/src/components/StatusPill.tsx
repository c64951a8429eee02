import { useI18n, type MessageKey } from '../i18n'

/** A coloured word for a node's or a job's state. */
export function StatusPill({ kind, value }: { kind: 'status' | 'state'; value: string }) {
  const { t } = useI18n()
  return <span className={`pill pill-${value}`}>{t(`${kind}_${value}` as MessageKey)}</span>
}
