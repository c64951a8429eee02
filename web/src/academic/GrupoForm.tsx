import { useEffect, useState } from 'react'
import { createRecord, getRecord, listRecords, replaceRecord, type Grupo, type GrupoData, type Profesor } from './api'
import { Field } from './Field'
import { FormDialog } from './FormDialog'
import { useAcademicText } from './messages'
import { useSave } from './useSave'

const BLANK: GrupoData = { clave: '', materia: '', periodo: '', cupo: 30, horario: '', profesor_id: null }
const PROFESOR_CHOICES = 100

const dataOf = (g: Grupo): GrupoData => ({
  clave: g.clave,
  materia: g.materia,
  periodo: g.periodo,
  cupo: g.cupo,
  horario: g.horario,
  profesor_id: g.profesor_id,
})

/** Create a grupo, or edit one (sent with its version: a stale edit is refused, not applied). */
export function GrupoForm({ grupo, onDone }: { grupo: Grupo | null; onDone: () => void }) {
  const t = useAcademicText()
  const [current, setCurrent] = useState(grupo)
  const [data, setData] = useState<GrupoData>(grupo ? dataOf(grupo) : BLANK)
  const [cupoText, setCupoText] = useState(String(grupo?.cupo ?? BLANK.cupo))
  const [profesores, setProfesores] = useState<Profesor[]>([])
  const [profesorQuery, setProfesorQuery] = useState('')
  const [chosenName, setChosenName] = useState(grupo?.profesor ?? null)
  const save = useSave(t('networkError'))

  useEffect(() => {
    let cancelled = false
    listRecords<Profesor>('profesores', { q: profesorQuery.trim(), per_page: PROFESOR_CHOICES })
      .then((page) => !cancelled && setProfesores(page.items))
      .catch(() => !cancelled && setProfesores([]))
    return () => {
      cancelled = true
    }
  }, [profesorQuery])

  const set = (field: keyof GrupoData, value: string | number | null) => setData((d) => ({ ...d, [field]: value }))

  const submit = () =>
    void save.run(async () => {
      // The text as typed: the service says why "abc" or "0" is not a capacity.
      const body = { ...data, cupo: cupoText.trim() === '' ? null : Number(cupoText) }
      if (current) await replaceRecord<Grupo>('grupos', current.id, body, current.version)
      else await createRecord<Grupo>('grupos', body)
      onDone()
    })

  const reload = async () => {
    if (!current) return
    const fresh = await getRecord<Grupo>('grupos', current.id)
    setCurrent(fresh)
    setData(dataOf(fresh))
    setCupoText(String(fresh.cupo))
    setChosenName(fresh.profesor)
    save.reset()
  }

  const text = (field: 'clave' | 'materia' | 'periodo' | 'horario') => (
    <Field name={field} label={t(field)} error={save.fieldErrors[field]}>
      {(props) => (
        <input {...props} value={data[field]} onChange={(e) => set(field, e.target.value)} data-testid={`input-${field}`} />
      )}
    </Field>
  )

  // The chosen profesor stays a choice when a search hides them.
  const assigned = data.profesor_id !== null && !profesores.some((p) => p.id === data.profesor_id)
  return (
    <FormDialog
      title={current ? t('editGrupo') : t('newGrupo')}
      testId="grupo-form"
      save={save}
      onSubmit={submit}
      onCancel={onDone}
      onReload={current ? () => void reload() : undefined}
    >
      {text('clave')}
      {text('materia')}
      {text('periodo')}
      <Field name="cupo" label={t('cupo')} error={save.fieldErrors.cupo}>
        {(props) => (
          <input
            {...props}
            type="number"
            inputMode="numeric"
            value={cupoText}
            onChange={(e) => setCupoText(e.target.value)}
            data-testid="input-cupo"
          />
        )}
      </Field>
      {text('horario')}
      <label className="field acad-field">
        <span>{t('findProfesor')}</span>
        <input
          type="search"
          value={profesorQuery}
          placeholder={t('searchProfesores')}
          onChange={(e) => setProfesorQuery(e.target.value)}
          data-testid="find-profesor"
        />
      </label>
      <Field name="profesor_id" label={t('profesor')} error={save.fieldErrors.profesor_id}>
        {(props) => (
          <select
            {...props}
            value={data.profesor_id ?? ''}
            onChange={(e) => {
              set('profesor_id', e.target.value ? Number(e.target.value) : null)
              setChosenName(e.target.selectedOptions[0]?.text ?? null)
            }}
            data-testid="input-profesor"
          >
            <option value="">{t('nobody')}</option>
            {assigned && chosenName && <option value={data.profesor_id ?? ''}>{chosenName}</option>}
            {profesores.map((p) => (
              <option key={p.id} value={p.id}>
                {p.apellidos}, {p.nombre}
              </option>
            ))}
          </select>
        )}
      </Field>
    </FormDialog>
  )
}
