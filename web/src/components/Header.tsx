import type { Connection } from '../useSnapshot'
import { useI18n } from '../i18n'
import { LangSwitch } from './LangSwitch'

const LABEL = { connecting: 'connecting', live: 'live', disconnected: 'reconnecting' } as const

/** The dark top bar: name, connection state, language switch. */
export function Header({ connection, version }: { connection: Connection; version?: string }) {
  const { t } = useI18n()
  return (
    <header className="app-header">
      <div className="brand">
        <svg className="brand-logo" viewBox="0 0 32 32" aria-hidden="true">
          <circle cx="16" cy="8" r="4.5" />
          <circle cx="7" cy="24" r="4.5" />
          <circle cx="25" cy="24" r="4.5" />
          <path d="M16 8 7 24h18z" />
        </svg>
        <div>
          <h1>Sistema Distribuido</h1>
          <p className="brand-subtitle">{t('appSubtitle')}</p>
        </div>
      </div>
      <div className="header-tools">
        {version && (
          <span className="app-version" data-testid="coordinator-version" title={t('coordinatorVersion')}>
            v{version}
          </span>
        )}
        <span className={`conn conn-${connection}`} data-testid="connection" role="status">
          <span className="conn-dot" aria-hidden="true" />
          <span className="conn-label">{t(LABEL[connection])}</span>
        </span>
        <LangSwitch />
      </div>
    </header>
  )
}
