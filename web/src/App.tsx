import { useEffect, useState } from 'react'
import { AcademicView } from './academic/AcademicView'
import { SectionTabs, useSection } from './academic/SectionTabs'
import { onUnauthorized } from './auth'
import { ClusterStrip } from './components/ClusterStrip'
import { DisconnectedBanner } from './components/DisconnectedBanner'
import { Header } from './components/Header'
import { JobList } from './components/JobList'
import { JobView } from './components/JobView'
import { NodeGrid } from './components/NodeGrid'
import { TokenPrompt } from './components/TokenPrompt'
import { UploadForm } from './components/UploadForm'
import type { Sending } from './upload'
import { useSelectedJob } from './useSelectedJob'
import { useSnapshot } from './useSnapshot'

/** The dashboard: header, cluster strip, nodes, upload, jobs and the selected job. */
export function App() {
  const { snapshot, history, connection } = useSnapshot()
  const [selectedJob, selectJob] = useSelectedJob()
  const [askToken, setAskToken] = useState(false)
  const [uploading, setUploading] = useState<Sending | null>(null)
  const [section, setSection] = useSection()

  useEffect(() => onUnauthorized(() => setAskToken(true)), [])

  const now = snapshot?.server_time ?? Date.now() / 1000
  const jobs = snapshot?.jobs ?? []
  return (
    <div className="app">
      <Header connection={connection} version={snapshot?.version} />
      {connection === 'disconnected' && <DisconnectedBanner />}
      <SectionTabs value={section} onChange={setSection} />
      {section === 'academic' && <AcademicView />}
      <main className={`layout${connection === 'disconnected' ? ' is-stale' : ''}`} hidden={section !== 'cluster'}>
        <ClusterStrip snapshot={snapshot} tpsHistory={history.tps} />
        <NodeGrid
          workers={Object.values(snapshot?.workers ?? {})}
          history={history}
          now={now}
          connecting={snapshot === null}
          coordinatorVersion={snapshot?.version}
        />
        <div className="work">
          <UploadForm onUploaded={selectJob} onProgress={setUploading} />
          <JobList jobs={jobs} now={now} selectedId={selectedJob} onSelect={selectJob} />
        </div>
        {selectedJob && (
          <JobView
            key={selectedJob}
            jobId={selectedJob}
            summary={jobs.find((job) => job.job_id === selectedJob)}
            now={now}
            upload={uploading?.jobId === selectedJob ? uploading : undefined}
            onClose={() => selectJob(null)}
          />
        )}
      </main>
      {askToken && <TokenPrompt onDone={() => setAskToken(false)} />}
    </div>
  )
}
