import { useCallback, useEffect, useRef, useState } from 'react'
import type { Grupo, Profesor } from './api'
import { ConfirmDelete } from './ConfirmDelete'
import { GrupoForm } from './GrupoForm'
import { GrupoTable } from './GrupoTable'
import { ProfesorForm } from './ProfesorForm'
import { ProfesorTable } from './ProfesorTable'
import { useAcademicEvents } from './useAcademicEvents'
import './academic.css'

const EVENT_BURST_MS = 200

type Editing =
  | { kind: 'profesor'; record: Profesor | null }
  | { kind: 'grupo'; record: Grupo | null }
  | { kind: 'delete-profesor'; record: Profesor }
  | { kind: 'delete-grupo'; record: Grupo }
  | null

/** The "Académico" section: profesores and grupos, kept current by the service's events. */
export function AcademicView() {
  const [refresh, setRefresh] = useState(0)
  const [editing, setEditing] = useState<Editing>(null)
  const [profesor, setProfesor] = useState<Profesor | null>(null)
  const reload = useCallback(() => setRefresh((n) => n + 1), [])
  const pending = useRef<ReturnType<typeof setTimeout> | undefined>(undefined)
  useEffect(() => () => clearTimeout(pending.current), [])

  useAcademicEvents(
    useCallback(
      (event) => {
        // An import of thousands of rows is thousands of events: reload once per burst.
        if (pending.current === undefined) {
          pending.current = setTimeout(() => {
            pending.current = undefined
            reload()
          }, EVENT_BURST_MS)
        }
        if (event?.type === 'profesor.deleted') setProfesor((p) => (p?.id === event.id ? null : p))
      },
      [reload],
    ),
  )

  const done = () => {
    setEditing(null)
    reload()
  }

  return (
    <main className="layout academic" data-testid="academic">
      <ProfesorTable
        refresh={refresh}
        onNew={() => setEditing({ kind: 'profesor', record: null })}
        onEdit={(record) => setEditing({ kind: 'profesor', record })}
        onDelete={(record) => setEditing({ kind: 'delete-profesor', record })}
        onShowGrupos={setProfesor}
        onImported={reload}
      />
      <GrupoTable
        refresh={refresh}
        profesor={profesor}
        onClearProfesor={() => setProfesor(null)}
        onNew={() => setEditing({ kind: 'grupo', record: null })}
        onEdit={(record) => setEditing({ kind: 'grupo', record })}
        onDelete={(record) => setEditing({ kind: 'delete-grupo', record })}
        onImported={reload}
      />
      {editing?.kind === 'profesor' && <ProfesorForm profesor={editing.record} onDone={done} />}
      {editing?.kind === 'grupo' && <GrupoForm grupo={editing.record} onDone={done} />}
      {editing?.kind === 'delete-profesor' && (
        <ConfirmDelete
          kind="profesores"
          id={editing.record.id}
          version={editing.record.version}
          name={`${editing.record.nombre} ${editing.record.apellidos}`}
          onDone={done}
        />
      )}
      {editing?.kind === 'delete-grupo' && (
        <ConfirmDelete kind="grupos" id={editing.record.id} version={editing.record.version} name={editing.record.clave} onDone={done} />
      )}
    </main>
  )
}
