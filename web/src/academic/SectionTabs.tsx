import { useEffect, useState } from 'react'
import { useAcademicText } from './messages'

export type Section = 'cluster' | 'academic'

const HASH: Record<Section, string> = { cluster: '', academic: '#academico' }
const fromHash = (): Section => (window.location.hash === HASH.academic ? 'academic' : 'cluster')

/** The chosen section, kept in the address (`#academico`) so a reload or a link opens it. */
export function useSection(): [Section, (section: Section) => void] {
  const [section, setSection] = useState<Section>(fromHash)
  useEffect(() => {
    const onHash = () => setSection(fromHash())
    window.addEventListener('hashchange', onHash)
    return () => window.removeEventListener('hashchange', onHash)
  }, [])
  const choose = (next: Section) => {
    history.replaceState(null, '', `${window.location.pathname}${window.location.search}${HASH[next]}`)
    setSection(next)
  }
  return [section, choose]
}

/** Tabs between the cluster view and the "Académico" section. */
export function SectionTabs({ value, onChange }: { value: Section; onChange: (section: Section) => void }) {
  const t = useAcademicText()
  const tab = (section: Section, label: string) => (
    <button
      type="button"
      role="tab"
      aria-selected={value === section}
      className={`section-tab${value === section ? ' is-active' : ''}`}
      onClick={() => onChange(section)}
      data-testid={`tab-${section}`}
    >
      {label}
    </button>
  )
  return (
    <nav className="section-tabs" role="tablist" aria-label={t('sections')}>
      {tab('cluster', t('tabCluster'))}
      {tab('academic', t('tabAcademic'))}
    </nav>
  )
}
