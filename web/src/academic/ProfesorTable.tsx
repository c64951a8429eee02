import { useState } from 'react'
import { ErrorMessage } from '../components/ErrorMessage'
import type { Profesor } from './api'
import { CsvTools } from './CsvTools'
import { useAcademicText } from './messages'
import { Pager } from './Pager'
import { usePagedList } from './usePagedList'

const PER_PAGE = 10

interface ProfesorTableProps {
  refresh: number
  onNew: () => void
  onEdit: (profesor: Profesor) => void
  onDelete: (profesor: Profesor) => void
  onShowGrupos: (profesor: Profesor) => void
  onImported: () => void
}

/** Profesores with search and paging; each row opens their grupos, an edit form, or a delete. */
export function ProfesorTable({ refresh, onNew, onEdit, onDelete, onShowGrupos, onImported }: ProfesorTableProps) {
  const t = useAcademicText()
  const [q, setQ] = useState('')
  const [page, setPage] = useState(1)
  const { data, error } = usePagedList<Profesor>('profesores', { q: q.trim(), page, per_page: PER_PAGE }, refresh)

  return (
    <section className="card acad-card" aria-labelledby="profesores-title" data-testid="profesores">
      <div className="acad-card-head">
        <h2 id="profesores-title" className="card-title">
          {t('profesores')} <span className="count">{data?.total ?? ''}</span>
        </h2>
        <button type="button" className="btn btn-primary btn-small" onClick={onNew} data-testid="new-profesor">
          {t('newProfesor')}
        </button>
      </div>
      <label className="field acad-search">
        <span>{t('search')}</span>
        <input
          type="search"
          placeholder={t('searchProfesores')}
          value={q}
          onChange={(e) => {
            setQ(e.target.value)
            setPage(1)
          }}
          data-testid="search-profesores"
        />
      </label>
      {error && <ErrorMessage message={error} />}
      {data && data.items.length === 0 ? (
        <p className="empty">{q ? t('noMatch') : t('empty')}</p>
      ) : (
        <div className="acad-table-wrap">
          <table className="acad-table" data-testid="profesores-table">
            <thead>
              <tr>
                <th scope="col">{t('apellidos')}</th>
                <th scope="col">{t('nombre')}</th>
                <th scope="col">{t('email')}</th>
                <th scope="col">{t('departamento')}</th>
                <th scope="col">{t('gruposCount')}</th>
                <th scope="col">
                  <span className="sr-only">{t('edit')}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {data?.items.map((p) => (
                <tr key={p.id} data-testid={`profesor-${p.email}`} className={p.activo ? '' : 'acad-inactive'}>
                  <td>{p.apellidos}</td>
                  <td>
                    {p.nombre} {!p.activo && <span className="muted">({t('inactivo')})</span>}
                  </td>
                  <td>{p.email}</td>
                  <td>{p.departamento}</td>
                  <td>
                    <button
                      type="button"
                      className="btn btn-small btn-ghost"
                      onClick={() => onShowGrupos(p)}
                      aria-label={t('showGrupos', { name: `${p.nombre} ${p.apellidos}` })}
                      data-testid="show-grupos"
                    >
                      {p.grupos}
                    </button>
                  </td>
                  <td className="acad-actions">
                    <div>
                      <button type="button" className="btn btn-small btn-secondary" onClick={() => onEdit(p)} data-testid="edit">
                        {t('edit')}
                      </button>
                      <button type="button" className="btn btn-small btn-ghost" onClick={() => onDelete(p)} data-testid="delete">
                        {t('delete')}
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {data && <Pager page={page} perPage={PER_PAGE} total={data.total} onPage={setPage} testId="profesores-pager" />}
      <CsvTools kind="profesores" onImported={onImported} />
    </section>
  )
}
