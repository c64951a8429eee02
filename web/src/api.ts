/** Fetch helpers for the coordinator's HTTP API. */
import { getToken, reportUnauthorized, withToken } from './auth'
import type { BatchAnswer, GrowingJob, JobDetail, JobSummary, OpSpec, Picked, TaskPage } from './types'

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

const jobPath = (jobId: string) => `/jobs/${encodeURIComponent(jobId)}`

/** A job's summary and its first `limit` tasks (the rest page by page). */
export const fetchJob = (jobId: string, signal?: AbortSignal, limit = 1000): Promise<JobDetail> =>
  apiFetch<JobDetail>(`${jobPath(jobId)}?limit=${limit}`, { signal })

export const fetchTasks = (jobId: string, state: string, limit: number, signal?: AbortSignal): Promise<TaskPage> =>
  apiFetch<TaskPage>(`${jobPath(jobId)}/tasks?state=${encodeURIComponent(state)}&limit=${limit}`, { signal })

const postJson = <T>(path: string, body?: unknown): Promise<T> =>
  apiFetch<T>(path, {
    method: 'POST',
    headers: body === undefined ? undefined : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })

/** An open job that takes files in batches until it is closed. */
export const createJob = (ops: string, copies: number, name: string): Promise<GrowingJob> =>
  postJson<GrowingJob>('/jobs', { ops, copies, name })

export function addFiles(jobId: string, files: Picked[]): Promise<BatchAnswer> {
  const form = new FormData()
  files.forEach(({ file, name }) => form.append('file', file, name))
  return apiFetch<BatchAnswer>(`${jobPath(jobId)}/files`, { method: 'POST', body: form })
}

export const closeJob = (jobId: string): Promise<JobSummary> => postJson<JobSummary>(`${jobPath(jobId)}/close`)
export const cancelJob = (jobId: string): Promise<JobSummary> => postJson<JobSummary>(`${jobPath(jobId)}/cancel`)

export const resultUrl = (filename: string): string => withToken(`/result/${encodeURIComponent(filename)}`)
export const inputUrl = (sha256: string): string => withToken(`/inputs/${encodeURIComponent(sha256)}`)
export const zipUrl = (jobId: string): string => withToken(`/jobs/${encodeURIComponent(jobId)}/zip`)
