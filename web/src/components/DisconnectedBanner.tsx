import { useI18n } from '../i18n'

/** Shown while the event stream is down; EventSource (or useSnapshot) keeps reconnecting. */
export function DisconnectedBanner() {
  const { t } = useI18n()
  return (
    <div className="banner banner-disconnected" role="alert" data-testid="disconnected-banner">
      <span className="spinner" aria-hidden="true" />
      {t('disconnected')}
    </div>
  )
}
