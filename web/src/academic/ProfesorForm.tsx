import { useState } from 'react'
import { createRecord, getRecord, replaceRecord, type Profesor, type ProfesorData } from './api'
import { Field } from './Field'
import { FormDialog } from './FormDialog'
import { useAcademicText } from './messages'
import { useSave } from './useSave'

const BLANK: ProfesorData = { nombre: '', apellidos: '', email: '', departamento: '', activo: true }

const dataOf = (p: Profesor): ProfesorData => ({
  nombre: p.nombre,
  apellidos: p.apellidos,
  email: p.email,
  departamento: p.departamento,
  activo: p.activo,
})

/** Create a profesor, or edit one (sent with its version: a stale edit is refused, not applied). */
export function ProfesorForm({ profesor, onDone }: { profesor: Profesor | null; onDone: () => void }) {
  const t = useAcademicText()
  const [current, setCurrent] = useState(profesor)
  const [data, setData] = useState<ProfesorData>(profesor ? dataOf(profesor) : BLANK)
  const save = useSave(t('networkError'))
  const set = (field: keyof ProfesorData, value: string | boolean) => setData((d) => ({ ...d, [field]: value }))

  const submit = () =>
    void save.run(async () => {
      if (current) await replaceRecord<Profesor>('profesores', current.id, data, current.version)
      else await createRecord<Profesor>('profesores', data)
      onDone()
    })

  const reload = async () => {
    if (!current) return
    const fresh = await getRecord<Profesor>('profesores', current.id)
    setCurrent(fresh)
    setData(dataOf(fresh))
    save.reset()
  }

  const text = (field: 'nombre' | 'apellidos' | 'email' | 'departamento', type = 'text') => (
    <Field name={field} label={t(field)} error={save.fieldErrors[field]}>
      {(props) => (
        <input
          {...props}
          type={type}
          value={data[field]}
          onChange={(e) => set(field, e.target.value)}
          data-testid={`input-${field}`}
        />
      )}
    </Field>
  )

  return (
    <FormDialog
      title={current ? t('editProfesor') : t('newProfesor')}
      testId="profesor-form"
      save={save}
      onSubmit={submit}
      onCancel={onDone}
      onReload={current ? () => void reload() : undefined}
    >
      {text('nombre')}
      {text('apellidos')}
      {text('email', 'email')}
      {text('departamento')}
      <Field name="activo" label={t('activo')} error={save.fieldErrors.activo}>
        {(props) => (
          <input
            {...props}
            type="checkbox"
            checked={data.activo}
            onChange={(e) => set('activo', e.target.checked)}
            data-testid="input-activo"
          />
        )}
      </Field>
    </FormDialog>
  )
}
