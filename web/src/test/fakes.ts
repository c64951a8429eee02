/** Test doubles: an EventSource the test drives, fetch answers, sample wire data. */
import { vi } from 'vitest'
import type { JobSummary, OpSpec, Snapshot, Worker } from '../types'

export class MockEventSource {
  static instances: MockEventSource[] = []
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSED = 2
  readonly url: string
  readyState = MockEventSource.CONNECTING
  onerror: ((event: Event) => void) | null = null
  onmessage: ((event: MessageEvent) => void) | null = null
  onopen: ((event: Event) => void) | null = null
  private listeners = new Map<string, Set<(event: MessageEvent) => void>>()

  constructor(url: string) {
    this.url = url
    MockEventSource.instances.push(this)
  }

  static get latest(): MockEventSource {
    return MockEventSource.instances[MockEventSource.instances.length - 1]
  }

  addEventListener(type: string, listener: (event: MessageEvent) => void) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set())
    this.listeners.get(type)!.add(listener)
  }

  removeEventListener(type: string, listener: (event: MessageEvent) => void) {
    this.listeners.get(type)?.delete(listener)
  }

  close() {
    this.readyState = MockEventSource.CLOSED
  }

  /** The coordinator pushes a snapshot. */
  emitSnapshot(snapshot: Snapshot) {
    this.readyState = MockEventSource.OPEN
    const event = new MessageEvent('snapshot', { data: JSON.stringify(snapshot) })
    this.listeners.get('snapshot')?.forEach((listener) => listener(event))
  }

  /** The coordinator pushes what changed since the last snapshot. */
  emitDelta(delta: unknown) {
    this.readyState = MockEventSource.OPEN
    const event = new MessageEvent('delta', { data: JSON.stringify(delta) })
    this.listeners.get('delta')?.forEach((listener) => listener(event))
  }

  /** The connection drops; EventSource would now be reconnecting by itself. */
  emitError(readyState = MockEventSource.CONNECTING) {
    this.readyState = readyState
    this.onerror?.(new Event('error'))
  }
}

export function installEventSource() {
  MockEventSource.instances = []
  vi.stubGlobal('EventSource', MockEventSource)
}

export function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
}

/** Stub fetch with a router: path (without leading slash) → response. */
export function installFetch(route: (path: string, init?: RequestInit) => Response | Promise<Response>) {
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    return route(url.replace(/^https?:\/\/[^/]+/, '').replace(/^\//, ''), init)
  })
  vi.stubGlobal('fetch', fetchMock)
  return fetchMock
}

export const OPS: OpSpec[] = [
  { name: 'grayscale', arg: null, type: null, default: null, min: null, max: null, description_en: 'Grayscale', description_es: 'Escala de grises' },
  { name: 'blur', arg: 'radius', type: 'float', default: 2, min: 0, max: 50, description_en: 'Gaussian blur', description_es: 'Desenfoque gaussiano' },
  { name: 'thumbnail', arg: 'size', type: 'int', default: 256, min: 16, max: 4096, description_en: 'Fit within a square', description_es: 'Encajar en un cuadrado' },
  { name: 'invert', arg: null, type: null, default: null, min: null, max: null, description_en: 'Invert colours', description_es: 'Invertir colores' },
]

export function worker(overrides: Partial<Worker> = {}): Worker {
  return {
    name: 'node-1',
    cpu: 42.4,
    ram: 63.2,
    net: 1.25,
    ip: '100.64.0.7',
    status: 'busy',
    task_id: '0f3c9a2e-1111-2222-3333-444455556666',
    last_seen: 1_700_000_000,
    is_local: false,
    alive: true,
    consumers: 4,
    prefetch: 8,
    processed: 120,
    failed: 1,
    ...overrides,
  }
}

export function job(overrides: Partial<JobSummary> = {}): JobSummary {
  return {
    job_id: 'job-1',
    state: 'running',
    total: 10,
    done: 4,
    failed: 1,
    created_at: 1_699_999_990,
    ops: 'grayscale,blur:2',
    kind: 'image',
    name: 'cat.png',
    ...overrides,
  }
}

export function snapshot(overrides: Partial<Snapshot> = {}): Snapshot {
  return {
    workers: { 'node-1': worker() },
    queue_size: 7,
    tps: 3.5,
    totals: { done: 40, failed: 2, queued: 7, running: 3 },
    jobs: [job()],
    server_time: 1_700_000_000,
    ...overrides,
  }
}
