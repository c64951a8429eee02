/** Calls to the coordinator's academic API; errors keep the field-by-field reasons. */
import { getToken, reportUnauthorized, withToken } from '../auth'

export interface Profesor {
  id: number
  nombre: string
  apellidos: string
  email: string
  departamento: string
  activo: boolean
  grupos: number
  version: number
  created_at: string
  updated_at: string
}

export interface Grupo {
  id: number
  clave: string
  materia: string
  periodo: string
  cupo: number
  horario: string
  profesor_id: number | null
  profesor: string | null
  version: number
  created_at: string
  updated_at: string
}

export interface Page<T> {
  items: T[]
  total: number
  page: number
  per_page: number
}

export interface FieldError {
  field: string
  reason: string
}

export interface ImportRow {
  row: number
  key: string
  action: 'created' | 'updated' | 'unchanged' | 'refused'
  detail?: string
  errors?: FieldError[]
}

export interface ImportReport {
  rows: ImportRow[]
  created: number
  updated: number
  unchanged: number
  refused: number
}

export type ProfesorData = Pick<Profesor, 'nombre' | 'apellidos' | 'email' | 'departamento' | 'activo'>
export type GrupoData = Pick<Grupo, 'clave' | 'materia' | 'periodo' | 'cupo' | 'horario' | 'profesor_id'>

export class AcademicError extends Error {
  readonly status: number
  readonly errors: FieldError[]

  constructor(status: number, message: string, errors: FieldError[] = []) {
    super(message)
    this.name = 'AcademicError'
    this.status = status
    this.errors = errors
  }

  /** The reason given for `field`, if any. */
  reasonFor(field: string): string | undefined {
    return this.errors.find((e) => e.field === field)?.reason
  }
}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers)
  const token = getToken()
  if (token) headers.set('Authorization', `Bearer ${token}`)
  const response = await fetch(path, { ...init, headers })
  if (response.status === 401) reportUnauthorized()
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`.trim()
    let errors: FieldError[] = []
    try {
      const body = (await response.json()) as { detail?: unknown; errors?: FieldError[] }
      if (typeof body.detail === 'string') message = body.detail
      if (Array.isArray(body.errors)) errors = body.errors
    } catch {
      // Not JSON: the status line is all there is.
    }
    throw new AcademicError(response.status, message, errors)
  }
  if (response.status === 204) return undefined as T
  return (await response.json()) as T
}

const json = (method: string, body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method,
  body: JSON.stringify(body),
  headers: { 'Content-Type': 'application/json', ...headers },
})

const query = (params: Record<string, string | number | null | undefined>): string => {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(key, String(value))
  }
  const text = search.toString()
  return text ? `?${text}` : ''
}

export type Kind = 'profesores' | 'grupos'

export function listRecords<T>(kind: Kind, params: Record<string, string | number | null | undefined>): Promise<Page<T>> {
  return request<Page<T>>(`/${kind}${query(params)}`)
}

export function createRecord<T>(kind: Kind, data: unknown): Promise<T> {
  return request<T>(`/${kind}`, json('POST', data))
}

/** Replace a record; `version` goes in If-Match, so a change made meanwhile answers 412. */
export function replaceRecord<T>(kind: Kind, id: number, data: unknown, version: number): Promise<T> {
  return request<T>(`/${kind}/${id}`, json('PUT', data, { 'If-Match': `"${version}"` }))
}

export function deleteRecord(kind: Kind, id: number, version: number, unassign = false): Promise<void> {
  return request<void>(`/${kind}/${id}${unassign ? '?unassign=true' : ''}`, {
    method: 'DELETE',
    headers: { 'If-Match': `"${version}"` },
  })
}

export function importCsv(kind: Kind, text: string): Promise<ImportReport> {
  return request<ImportReport>(`/${kind}/import`, { method: 'POST', body: text, headers: { 'Content-Type': 'text/csv' } })
}

export const exportUrl = (kind: Kind): string => withToken(`/${kind}/export`)

export function getRecord<T>(kind: Kind, id: number): Promise<T> {
  return request<T>(`/${kind}/${id}`)
}
