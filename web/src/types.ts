/** Wire shapes of the coordinator's HTTP API (DESIGN.md §3). */

export type WorkerStatus = 'free' | 'busy' | 'paused' | 'draining' | 'offline'
export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled'
export type TaskState = JobState

export interface Worker {
  name: string
  cpu: number
  ram: number
  net: number
  ip: string
  status: WorkerStatus
  task_id: string | null
  last_seen: number
  is_local: boolean
  alive: boolean
  consumers: number
  prefetch: number
  processed: number
  failed: number
  /** The worker's package version; null from workers older than version reporting. */
  version?: string | null
  /** The node's operating system ("Windows 11", "macOS 14.5"); empty from older workers. */
  os?: string
  /** Round trip of its previous report, as the worker timed it (null before the second). */
  rtt_ms?: number | null
  /** Why a paused worker takes no tasks: its CPU above CPU_LIMIT, its disk full. */
  paused_for?: ('cpu' | 'disk')[]
}

export interface JobSummary {
  job_id: string
  state: JobState
  total: number
  done: number
  failed: number
  created_at: number
  ops: string
  kind: 'image' | 'task' | 'files'
  name: string
  /** A growing job still taking files. */
  open?: boolean
  cancelled?: number
}

export interface Totals {
  done: number
  failed: number
  queued: number
  running: number
}

export interface Snapshot {
  workers: Record<string, Worker>
  queue_size: number
  tps: number
  totals: Totals
  jobs: JobSummary[]
  server_time: number
  /** The coordinator's package version. */
  version?: string
}

export interface TaskDetail {
  task_id: string
  state: TaskState
  worker: string | null
  result: string | null
  output: unknown
  error: string | null
  input: string | null
  filename: string | null
  /** Why the task was published again (its host was lost, or lagged), or null. */
  rerun?: string | null
}

export interface JobDetail extends JobSummary {
  tasks: TaskDetail[]
  /** Cursor of the next page of tasks (GET /jobs/{id}/tasks), or null. */
  tasks_next?: number | null
}

export interface TaskPage {
  tasks: TaskDetail[]
  next: number | null
}

/** A job that takes files in batches (POST /jobs). */
export interface GrowingJob extends JobSummary {
  max_upload_bytes: number
  max_files: number
}

export interface FileAnswer {
  name: string
  status: 'queued' | 'duplicate' | 'rejected'
  tasks: number
  detail?: string
}

export interface BatchAnswer {
  job_id: string
  tasks: number
  files: FileAnswer[]
  rejected: number
}

/** A file picked or dropped, with its name in the job (its path inside a dropped folder). */
export interface Picked {
  file: File
  name: string
}

export interface OpSpec {
  name: string
  arg: string | null
  type: 'int' | 'float' | null
  default: number | null
  min: number | null
  max: number | null
  description_en: string
  description_es: string
}
