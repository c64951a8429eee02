import { useEffect, useState, type FormEvent } from 'react'
import { ApiError, fetchOps, uploadImages } from '../api'
import { useToken } from '../auth'
import { clamp } from '../format'
import { useI18n } from '../i18n'
import { parseOps, type Step } from '../pipeline'
import type { OpSpec } from '../types'
import { ErrorMessage } from './ErrorMessage'
import { FileDrop } from './FileDrop'
import { PipelineBuilder } from './PipelineBuilder'

const DEFAULT_OPS = 'grayscale'
const MAX_COPIES = 1000

/** Upload one or many images with an ops pipeline and a number of copies. */
export function UploadForm({ onUploaded }: { onUploaded: (jobId: string) => void }) {
  const { t } = useI18n()
  const [specs, setSpecs] = useState<OpSpec[]>([])
  const [specsFailed, setSpecsFailed] = useState(false)
  const [files, setFiles] = useState<File[]>([])
  const [steps, setSteps] = useState<Step[]>([])
  const [opsText, setOpsText] = useState(DEFAULT_OPS)
  const [copies, setCopies] = useState('1')
  const [sending, setSending] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const [sent, setSent] = useState<string | null>(null)
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
    if (files.length === 0) return setError(t('noFiles'))
    if (!opsText.trim()) return setError(t('noOps'))
    const count = clamp(Math.round(Number(copies)) || 1, 1, MAX_COPIES)
    setCopies(String(count))
    setSending(true)
    try {
      const accepted = await uploadImages(files, opsText.trim(), count)
      setSent(t('sent', { id: accepted.job_id.slice(0, 8), n: accepted.tasks }))
      setFiles([])
      onUploaded(accepted.job_id)
    } catch (err) {
      setError(err instanceof ApiError ? err.message : t('networkError'))
    } finally {
      setSending(false)
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
        {error && <ErrorMessage message={error} />}
        {sent && (
          <div className="message message-ok" role="status" data-testid="upload-success">
            {sent}
          </div>
        )}
      </form>
    </section>
  )
}
