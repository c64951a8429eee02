/** Fetch helpers for the coordinator's HTTP API. */
import { getToken, reportUnauthorized, withToken } from './auth'
import type { JobDetail, OpSpec, UploadAccepted } from './types'

export class ApiError extends Error {
  readonly status: number

  constructor(status: number, message: string) {
    super(message)
    this.name = 'ApiError'
    this.status = status
  }
}

/** A readable text for FastAPI's `detail`: a string, or a list of `{loc, msg}` validation errors. */
export function formatDetail(detail: unknown): string {
  if (typeof detail === 'string') return detail
  if (Array.isArray(detail)) {
    return detail
      .map((item) => {
        if (item && typeof item === 'object' && 'msg' in item) {
          const { loc, msg } = item as { loc?: unknown; msg: unknown }
          const where = Array.isArray(loc) ? loc.filter((part) => part !== 'body').join('.') : ''
          return where ? `${where}: ${String(msg)}` : String(msg)
        }
        return typeof item === 'string' ? item : JSON.stringify(item)
      })
      .join('\n')
  }
  if (detail == null) return ''
  return JSON.stringify(detail)
}

async function errorFrom(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`.trim()
  try {
    const body: unknown = await response.json()
    if (body && typeof body === 'object' && 'detail' in body) {
      message = formatDetail((body as { detail: unknown }).detail) || message
    }
  } catch {
    // Not JSON (a proxy's error page, say): the status line is all there is.
  }
  return new ApiError(response.status, message)
}

/** fetch with the token header; JSON in, JSON out; non-2xx answers throw ApiError. */
export async function apiFetch<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers)
  const token = getToken()
  if (token) headers.set('Authorization', `Bearer ${token}`)
  const response = await fetch(path, { ...init, headers })
  if (response.status === 401) reportUnauthorized()
  if (!response.ok) throw await errorFrom(response)
  return (await response.json()) as T
}

export const fetchOps = (): Promise<OpSpec[]> => apiFetch<OpSpec[]>('/ops')

export const fetchJob = (jobId: string, signal?: AbortSignal): Promise<JobDetail> =>
  apiFetch<JobDetail>(`/jobs/${encodeURIComponent(jobId)}`, { signal })

export function uploadImages(files: File[], ops: string, copies: number): Promise<UploadAccepted> {
  const form = new FormData()
  files.forEach((file) => form.append('file', file, file.name))
  form.append('ops', ops)
  form.append('copies', String(copies))
  return apiFetch<UploadAccepted>('/upload', { method: 'POST', body: form })
}

export const resultUrl = (filename: string): string => withToken(`/result/${encodeURIComponent(filename)}`)
export const inputUrl = (sha256: string): string => withToken(`/inputs/${encodeURIComponent(sha256)}`)
export const zipUrl = (jobId: string): string => withToken(`/jobs/${encodeURIComponent(jobId)}/zip`)
