import { useState, type DragEvent } from 'react'
import { useI18n } from '../i18n'
import { FileChip } from './FileChip'

interface FileDropProps {
  files: File[]
  onChange: (files: File[]) => void
}

/** Drag-and-drop area and file picker for one or many images. */
export function FileDrop({ files, onChange }: FileDropProps) {
  const { t } = useI18n()
  const [over, setOver] = useState(false)

  const add = (list: FileList | null) => {
    if (list && list.length) onChange([...files, ...Array.from(list)])
  }
  const onDrop = (event: DragEvent) => {
    event.preventDefault()
    setOver(false)
    add(event.dataTransfer.files)
  }

  return (
    <div className="file-drop-wrap">
      <label
        className={`file-drop${over ? ' is-over' : ''}`}
        onDragOver={(e) => {
          e.preventDefault()
          setOver(true)
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
        data-testid="drop-zone"
      >
        <svg className="file-drop-icon" viewBox="0 0 24 24" aria-hidden="true">
          <path d="M12 16V4m0 0-4 4m4-4 4 4M4 16v3a1 1 0 0 0 1 1h14a1 1 0 0 0 1-1v-3" />
        </svg>
        <span className="file-drop-title">{t('dropTitle')}</span>
        <span className="muted">
          {t('dropOr')} <span className="link">{t('browse')}</span>
        </span>
        <input
          type="file"
          className="sr-only"
          multiple
          accept="image/*"
          aria-label={t('files')}
          data-testid="file-input"
          onChange={(e) => {
            add(e.target.files)
            e.target.value = ''
          }}
        />
      </label>
      {files.length > 0 && (
        <>
          <div className="file-list-head">
            <span>
              {t('files')} <span className="count">{files.length}</span>
            </span>
            <button type="button" className="btn btn-ghost btn-small" onClick={() => onChange([])}>
              {t('clearFiles')}
            </button>
          </div>
          <ul className="file-list">
            {files.map((file, index) => (
              <FileChip
                key={`${file.name}-${file.size}-${index}`}
                file={file}
                onRemove={() => onChange(files.filter((_, i) => i !== index))}
              />
            ))}
          </ul>
        </>
      )}
    </div>
  )
}
