import { useEffect, useState } from 'react'
import { useI18n } from '../i18n'

function formatSize(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`
  return `${Math.max(1, Math.round(bytes / 1024))} KB`
}

/** A chosen file: thumbnail, name, size and a remove button. */
export function FileChip({ file, name = file.name, onRemove }: { file: File; name?: string; onRemove: () => void }) {
  const { t } = useI18n()
  const [preview, setPreview] = useState<string | null>(null)

  useEffect(() => {
    if (typeof URL.createObjectURL !== 'function' || !file.type.startsWith('image/')) return
    const url = URL.createObjectURL(file)
    setPreview(url)
    return () => URL.revokeObjectURL(url)
  }, [file])

  return (
    <li className="file-chip">
      {preview ? <img src={preview} alt="" className="file-thumb" /> : <span className="file-thumb" aria-hidden="true" />}
      <span className="file-name" title={name}>
        {name}
      </span>
      <span className="file-size">{formatSize(file.size)}</span>
      <button type="button" className="icon-btn" aria-label={t('removeFile', { name })} onClick={onRemove}>
        ✕
      </button>
    </li>
  )
}
