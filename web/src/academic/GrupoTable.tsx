import { useState } from 'react'
import { ErrorMessage } from '../components/ErrorMessage'
import type { Grupo, Profesor } from './api'
import { CsvTools } from './CsvTools'
import { useAcademicText } from './messages'
import { Pager } from './Pager'
import { usePagedList } from './usePagedList'

const PER_PAGE = 10

interface GrupoTableProps {
  refresh: number
  profesor: Profesor | null
  onClearProfesor: () => void
  onNew: () => void
  onEdit: (grupo: Grupo) => void
  onDelete: (grupo: Grupo) => void
  onImported: () => void
}

/** Grupos with search, a term filter and paging; narrowed to one profesor's when one is chosen. */
export function GrupoTable({ refresh, profesor, onClearProfesor, onNew, onEdit, onDelete, onImported }: GrupoTableProps) {
  const t = useAcademicText()
  const [q, setQ] = useState('')
  const [periodo, setPeriodo] = useState('')
  const [page, setPage] = useState(1)
  const params = { q: q.trim(), periodo: periodo.trim(), profesor_id: profesor?.id, page, per_page: PER_PAGE }
  const { data, error } = usePagedList<Grupo>('grupos', params, refresh)
  const title = profesor ? t('gruposOf', { name: `${profesor.nombre} ${profesor.apellidos}` }) : t('grupos')

  return (
    <section className="card acad-card" aria-labelledby="grupos-title" data-testid="grupos">
      <div className="acad-card-head">
        <h2 id="grupos-title" className="card-title" data-testid="grupos-title">
          {title} <span className="count">{data?.total ?? ''}</span>
        </h2>
        <button type="button" className="btn btn-primary btn-small" onClick={onNew} data-testid="new-grupo">
          {t('newGrupo')}
        </button>
      </div>
      {profesor && (
        <button type="button" className="btn btn-small btn-ghost" onClick={onClearProfesor} data-testid="clear-profesor">
          {t('clearFilter')}
        </button>
      )}
      <div className="acad-filters">
        <label className="field acad-search">
          <span>{t('search')}</span>
          <input
            type="search"
            placeholder={t('searchGrupos')}
            value={q}
            onChange={(e) => {
              setQ(e.target.value)
              setPage(1)
            }}
            data-testid="search-grupos"
          />
        </label>
        <label className="field acad-term">
          <span>{t('periodoFilter')}</span>
          <input
            placeholder={t('allTerms')}
            value={periodo}
            onChange={(e) => {
              setPeriodo(e.target.value)
              setPage(1)
            }}
            data-testid="filter-periodo"
          />
        </label>
      </div>
      {error && <ErrorMessage message={error} />}
      {data && data.items.length === 0 ? (
        <p className="empty">{q || periodo || profesor ? t('noMatch') : t('empty')}</p>
      ) : (
        <div className="acad-table-wrap">
          <table className="acad-table" data-testid="grupos-table">
            <thead>
              <tr>
                <th scope="col">{t('clave')}</th>
                <th scope="col">{t('materia')}</th>
                <th scope="col">{t('periodo')}</th>
                <th scope="col">{t('cupo')}</th>
                <th scope="col">{t('horario')}</th>
                <th scope="col">{t('profesor')}</th>
                <th scope="col">
                  <span className="sr-only">{t('edit')}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {data?.items.map((g) => (
                <tr key={g.id} data-testid={`grupo-${g.clave}`}>
                  <td className="acad-key">{g.clave}</td>
                  <td>{g.materia}</td>
                  <td>{g.periodo}</td>
                  <td>{g.cupo}</td>
                  <td>{g.horario}</td>
                  <td data-testid="grupo-profesor">{g.profesor ?? <span className="muted">{t('nobody')}</span>}</td>
                  <td className="acad-actions">
                    <div>
                      <button type="button" className="btn btn-small btn-secondary" onClick={() => onEdit(g)} data-testid="edit">
                        {t('edit')}
                      </button>
                      <button type="button" className="btn btn-small btn-ghost" onClick={() => onDelete(g)} data-testid="delete">
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
      {data && <Pager page={page} perPage={PER_PAGE} total={data.total} onPage={setPage} testId="grupos-pager" />}
      <CsvTools kind="grupos" onImported={onImported} />
    </section>
  )
}
