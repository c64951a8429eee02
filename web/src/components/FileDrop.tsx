import { useState, type DragEvent } from 'react'
import { useI18n } from '../i18n'
import type { Picked } from '../types'
import { pickedFromDrop, pickedFromList } from '../upload'
import { FileChip } from './FileChip'

/** Chips shown at most: a dropped folder of hundreds of photos is summed up, not listed. */
const CHIPS_SHOWN = 30

interface FileDropProps {
  files: Picked[]
  onChange: (files: Picked[]) => void
}

/** Drag-and-drop area and pickers for images or a whole folder. */
export function FileDrop({ files, onChange }: FileDropProps) {
  const { t } = useI18n()
  const [over, setOver] = useState(false)

  const add = (more: Picked[]) => {
    if (more.length) onChange([...files, ...more])
  }
  const onDrop = (event: DragEvent) => {
    event.preventDefault()
    setOver(false)
    void pickedFromDrop(event.dataTransfer).then(add)
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
            add(pickedFromList(e.target.files ?? []))
            e.target.value = ''
          }}
        />
      </label>
      <label className="folder-pick muted">
        {t('dropOr')} <span className="link">{t('chooseFolder')}</span>
        <input
          type="file"
          className="sr-only"
          multiple
          aria-label={t('chooseFolder')}
          data-testid="folder-input"
          {...{ webkitdirectory: '' }}
          onChange={(e) => {
            add(pickedFromList(e.target.files ?? []))
            e.target.value = ''
          }}
        />
      </label>
      {files.length > 0 && (
        <>
          <div className="file-list-head">
            <span>
              {t('files')} <span className="count" data-testid="file-count">{files.length}</span>
            </span>
            <button type="button" className="btn btn-ghost btn-small" onClick={() => onChange([])}>
              {t('clearFiles')}
            </button>
          </div>
          <ul className="file-list">
            {files.slice(0, CHIPS_SHOWN).map((picked, index) => (
              <FileChip
                key={`${picked.name}-${picked.file.size}-${index}`}
                file={picked.file}
                name={picked.name}
                onRemove={() => onChange(files.filter((_, i) => i !== index))}
              />
            ))}
            {files.length > CHIPS_SHOWN && <li className="muted">{t('moreFiles', { n: files.length - CHIPS_SHOWN })}</li>}
          </ul>
        </>
      )}
    </div>
  )
}
