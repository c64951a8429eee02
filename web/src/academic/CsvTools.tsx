import { useRef, useState } from 'react'
import { ErrorMessage } from '../components/ErrorMessage'
import { AcademicError, exportUrl, importCsv, type ImportReport, type Kind } from './api'
import { useAcademicText } from './messages'

/** Import a CSV (with the row-by-row report) and export one. */
export function CsvTools({ kind, onImported }: { kind: Kind; onImported: () => void }) {
  const t = useAcademicText()
  const input = useRef<HTMLInputElement>(null)
  const [report, setReport] = useState<ImportReport | null>(null)
  const [error, setError] = useState<string | null>(null)

  const upload = async (file: File | undefined) => {
    if (!file) return
    setError(null)
    setReport(null)
    try {
      setReport(await importCsv(kind, await file.text()))
      onImported()
    } catch (err) {
      setError(err instanceof AcademicError ? err.message : t('networkError'))
    } finally {
      if (input.current) input.current.value = ''
    }
  }

  return (
    <div className="acad-csv">
      <div className="acad-csv-buttons">
        <button type="button" className="btn btn-small btn-secondary" onClick={() => input.current?.click()}>
          {t('importCsv')}
        </button>
        <input
          ref={input}
          type="file"
          accept=".csv,text/csv"
          hidden
          onChange={(e) => void upload(e.target.files?.[0])}
          data-testid={`${kind}-import-input`}
        />
        <a className="btn btn-small btn-secondary" href={exportUrl(kind)} download={`${kind}.csv`} data-testid={`${kind}-export`}>
          {t('exportCsv')}
        </a>
      </div>
      {error && <ErrorMessage message={error} />}
      {report && (
        <div className="acad-report" role="status" data-testid={`${kind}-import-report`}>
          <p>
            {t('importResult', { created: report.created, updated: report.updated, unchanged: report.unchanged, refused: report.refused })}
          </p>
          <ul>
            {report.rows
              .filter((row) => row.action !== 'unchanged')
              .map((row) => (
                <li key={row.row} className={`acad-report-${row.action}`}>
                  {t('row', { row: row.row })} {row.key && <strong>{row.key}</strong>}: {t(`action_${row.action}`)}
                  {row.errors?.length ? ` — ${row.errors.map((e) => `${e.field}: ${e.reason}`).join('; ')}` : ''}
                </li>
              ))}
          </ul>
          <button type="button" className="btn btn-small btn-ghost" onClick={() => setReport(null)} aria-label={t('close')}>
            ×
          </button>
        </div>
      )}
    </div>
  )
}
