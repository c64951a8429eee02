import { useEffect, useState, type FormEvent } from 'react'
import { ApiError, fetchOps } from '../api'
import { useToken } from '../auth'
import { clamp } from '../format'
import { useI18n } from '../i18n'
import { parseOps, type Step } from '../pipeline'
import type { FileAnswer, OpSpec, Picked } from '../types'
import { isImageName, sendFiles, type Sending } from '../upload'
import { ErrorMessage } from './ErrorMessage'
import { FileDrop } from './FileDrop'
import { PipelineBuilder } from './PipelineBuilder'
import { ProgressBar } from './ProgressBar'

const DEFAULT_OPS = 'grayscale'
const MAX_COPIES = 1000

/** Upload images or whole folders with an ops pipeline and a number of copies: one job, fed
 * in batches, opened in the job view as soon as it exists. Files the coordinator refuses are
 * listed with their reasons; the others go through. */
export function UploadForm({
  onUploaded,
  onProgress,
}: {
  onUploaded: (jobId: string) => void
  /** The upload's progress while it runs (null once it ended), for the job view. */
  onProgress?: (progress: Sending | null) => void
}) {
  const { t } = useI18n()
  const [specs, setSpecs] = useState<OpSpec[]>([])
  const [specsFailed, setSpecsFailed] = useState(false)
  const [files, setFiles] = useState<Picked[]>([])
  const [steps, setSteps] = useState<Step[]>([])
  const [opsText, setOpsText] = useState(DEFAULT_OPS)
  const [copies, setCopies] = useState('1')
  const [sending, setSending] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const [sent, setSent] = useState<string | null>(null)
  const [progress, setProgress] = useState<Sending | null>(null)
  const [refused, setRefused] = useState<FileAnswer[]>([])
  const token = useToken()

  useEffect(() => {
    let cancelled = false
    fetchOps()
      .then((loaded) => {
        if (cancelled) return
        setSpecs(loaded)
        setSpecsFailed(false)
        setSteps((current) => (current.length ? current : parseOps(DEFAULT_OPS, loaded).steps))
      })
      .catch(() => !cancelled && setSpecsFailed(true))
    return () => {
      cancelled = true
    }
  }, [token])

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    setSent(null)
    setRefused([])
    if (files.length === 0) return setError(t('noFiles'))
    if (!opsText.trim()) return setError(t('noOps'))
    const count = clamp(Math.round(Number(copies)) || 1, 1, MAX_COPIES)
    setCopies(String(count))
    const images = files.filter((f) => isImageName(f.name))
    const skipped: FileAnswer[] = files
      .filter((f) => !isImageName(f.name))
      .map((f) => ({ name: f.name, status: 'rejected', tasks: 0, detail: t('notAnImage') }))
    if (!images.length) return setRefused(skipped)
    setSending(true)
    setProgress({ jobId: '', sent: 0, total: images.length })
    const report = (next: Sending | null) => {
      setProgress(next)
      onProgress?.(next)
    }
    try {
      const done = await sendFiles(images, opsText.trim(), count, onUploaded, report)
      setSent(t('sent', { id: done.jobId.slice(0, 8), n: done.tasks }))
      setRefused([...skipped, ...done.rejected])
      setFiles([])
    } catch (err) {
      setError(err instanceof ApiError ? err.message : t('networkError'))
      setRefused(skipped)
    } finally {
      setSending(false)
      report(null)
    }
  }

  return (
    <section className="card upload" aria-labelledby="upload-title">
      <h2 id="upload-title" className="card-title">
        {t('upload')}
      </h2>
      <form onSubmit={submit} data-testid="upload-form" noValidate>
        <FileDrop files={files} onChange={setFiles} />
        <PipelineBuilder
          specs={specs}
          specsFailed={specsFailed}
          steps={steps}
          opsText={opsText}
          onChange={(nextSteps, nextText) => {
            setSteps(nextSteps)
            setOpsText(nextText)
          }}
        />
        <div className="upload-actions">
          <label className="field field-copies">
            <span>{t('copies')}</span>
            <input
              type="number"
              min={1}
              max={MAX_COPIES}
              step={1}
              inputMode="numeric"
              value={copies}
              onChange={(e) => setCopies(e.target.value)}
              onBlur={() => setCopies(String(clamp(Math.round(Number(copies)) || 1, 1, MAX_COPIES)))}
              data-testid="copies-input"
            />
          </label>
          <button type="submit" className="btn btn-primary btn-submit" disabled={sending} data-testid="upload-submit">
            {sending ? t('sending') : t('submit')}
          </button>
        </div>
        {progress && (
          <div className="upload-progress" data-testid="upload-progress">
            <span>{t('uploading', { sent: progress.sent, total: progress.total })}</span>
            <ProgressBar done={progress.sent} failed={0} total={progress.total} label={t('uploadProgress')} />
          </div>
        )}
        {error && <ErrorMessage message={error} />}
        {sent && (
          <div className="message message-ok" role="status" data-testid="upload-success">
            {sent}
          </div>
        )}
        {refused.length > 0 && (
          <div className="message message-warn" data-testid="refused-files">
            <strong>{t('notProcessed', { n: refused.length })}</strong>
            <ul>
              {refused.map((f, i) => (
                <li key={`${f.name}-${i}`} data-testid="refused-file">
                  <code>{f.name}</code>: {f.detail}
                </li>
              ))}
            </ul>
          </div>
        )}
      </form>
    </section>
  )
}
