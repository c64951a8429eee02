/** Wire shapes of the coordinator's HTTP API (DESIGN.md §3). */

export type WorkerStatus = 'free' | 'busy' | 'offline'
export type JobState = 'queued' | 'running' | 'done' | 'failed'
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
  /** The node's operating system ("Windows 11", "macOS 14.5"); empty from older workers. */
  os?: string
}

export interface JobSummary {
  job_id: string
  state: JobState
  total: number
  done: number
  failed: number
  created_at: number
  ops: string
  kind: 'image' | 'task'
  name: string
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
}

export interface JobDetail extends JobSummary {
  tasks: TaskDetail[]
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

export interface UploadAccepted {
  status: 'sent'
  job_id: string
  tasks: number
}
