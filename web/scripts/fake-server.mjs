#!/usr/bin/env node
// A stand-in coordinator for working on the dashboard without Python or RabbitMQ: serves the built
// page and a simulated cluster behind the same API (GET /events, /ops, /jobs/{id}, /result/{f},
// /inputs/{sha}, /jobs/{id}/zip; POST /upload).
//
//   npm run build && node scripts/fake-server.mjs        # http://127.0.0.1:5174/
//   PORT=8000 node scripts/fake-server.mjs                # stand in for the API under `npm run dev`
//   API_TOKEN=secret node scripts/fake-server.mjs         # try the token prompt
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { extname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import { deflateSync } from 'node:zlib'

const PORT = Number(process.env.PORT ?? 5174)
const STATIC_DIR = process.env.STATIC_DIR ?? fileURLToPath(new URL('../../src/sd_coordinator/static', import.meta.url))
const TOKEN = process.env.API_TOKEN ?? ''
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png' }

const OPS = [
  ['grayscale', null, null, null, null, null, 'Grayscale', 'Escala de grises'],
  ['blur', 'radius', 'float', 2, 0, 50, 'Gaussian blur', 'Desenfoque gaussiano'],
  ['sharpen', null, null, null, null, null, 'Sharpen', 'Enfocar'],
  ['edges', null, null, null, null, null, 'Find edges', 'Detectar bordes'],
  ['contour', null, null, null, null, null, 'Contour', 'Contorno'],
  ['emboss', null, null, null, null, null, 'Emboss', 'Relieve'],
  ['invert', null, null, null, null, null, 'Invert colours', 'Invertir colores'],
  ['sepia', null, null, null, null, null, 'Sepia tone', 'Tono sepia'],
  ['autocontrast', null, null, null, null, null, 'Auto contrast', 'Contraste automático'],
  ['equalize', null, null, null, null, null, 'Equalize histogram', 'Ecualizar histograma'],
  ['thumbnail', 'size', 'int', 256, 16, 4096, 'Fit within a square of size px', 'Encajar en un cuadrado de size px'],
  ['rotate', 'degrees', 'float', 90, -360, 360, 'Rotate counter-clockwise', 'Rotar en sentido antihorario'],
  ['flip', null, null, null, null, null, 'Flip top to bottom', 'Voltear verticalmente'],
  ['mirror', null, null, null, null, null, 'Mirror left to right', 'Espejo horizontal'],
  ['brightness', 'factor', 'float', 1.2, 0, 10, 'Brightness factor', 'Factor de brillo'],
  ['contrast', 'factor', 'float', 1.2, 0, 10, 'Contrast factor', 'Factor de contraste'],
].map(([name, arg, type, dflt, min, max, en, es]) => ({ name, arg, type, default: dflt, min, max, description_en: en, description_es: es }))

// ---- the simulated cluster ----
const now = () => Date.now() / 1000
const rand = (min, max) => min + Math.random() * (max - min)
const walk = (v, step, min, max) => Math.min(max, Math.max(min, v + rand(-step, step)))
const node = (name, ip, extra = {}) => ({ name, cpu: rand(5, 60), ram: rand(30, 70), net: rand(0, 3), ip, status: 'free', task_id: null, last_seen: now(), is_local: false, alive: true, consumers: 4, prefetch: 8, processed: 0, failed: 0, ...extra })
const workers = {
  'coordinator-pc': node('coordinator-pc', '100.101.12.4', { is_local: true, consumers: 2, prefetch: 4, processed: 311 }),
  'lab-node-02': node('lab-node-02', '100.88.40.17', { consumers: 6, prefetch: 12, processed: 954, failed: 3 }),
  'lab-node-03': node('lab-node-03', '100.88.40.23', { processed: 702 }),
  'raspberry-pi': node('raspberry-pi', '100.70.2.9', { alive: false, status: 'offline', last_seen: now() - 42, cpu: 3, ram: 41, net: 0, consumers: 1, prefetch: 2, processed: 87 }),
}
let jobSeq = 0
const jobs = []
function addJob({ name, ops, total, kind = 'image', done = 0, failed = 0, age = 0, failRate = 0 }) {
  const job = { job_id: `${(++jobSeq).toString(16).padStart(8, '0')}-5d1e-4c3a-9f0b-${Math.random().toString(16).slice(2, 14).padEnd(12, '0')}`, state: 'queued', total, done, failed, created_at: now() - age, ops, kind, name, failRate }
  job.state = done + failed >= total ? (failed ? 'failed' : 'done') : done + failed > 0 ? 'running' : 'queued'
  jobs.unshift(job)
  return job
}
addJob({ name: 'vacaciones-2024.jpg', ops: 'grayscale', total: 12, done: 12, age: 1900 })
addJob({ name: 'scan-0042.png', ops: 'autocontrast,sharpen', total: 10, done: 8, failed: 2, age: 700 })
addJob({ name: 'sleep', ops: '', kind: 'task', total: 4, done: 4, age: 420 })
addJob({ name: 'facade.jpg', ops: 'grayscale,blur:2,thumbnail:256', total: 50, done: 17, age: 60, failRate: 0.03 })
addJob({ name: 'street.png', ops: 'edges,invert', total: 200, age: 5 })

let completions = [] // timestamps of finished tasks, for the 5 s TPS window
setInterval(() => {
  const t = now()
  const active = jobs.filter((j) => j.state === 'queued' || j.state === 'running')
  if (active.length === 0) addJob({ name: `batch-${jobSeq + 1}.png`, ops: 'sepia,contrast:1.4', total: 60, failRate: 0.02 })
  const live = Object.values(workers).filter((w) => w.alive)
  for (const w of live) {
    const job = active.find((j) => j.done + j.failed < j.total)
    const finished = job ? Math.min(job.total - job.done - job.failed, Math.round(rand(0, 3))) : 0
    if (job) {
      job.state = 'running'
      for (let i = 0; i < finished; i++) {
        if (Math.random() < job.failRate) (job.failed++, w.failed++)
        else (job.done++, w.processed++)
        completions.push(t)
      }
      if (job.done + job.failed >= job.total) job.state = job.failed ? 'failed' : 'done'
    }
    w.status = job ? 'busy' : 'free'
    w.task_id = job ? `${job.job_id.slice(0, 8)}-t${job.done + job.failed}` : null
    w.cpu = walk(w.status === 'busy' ? Math.max(w.cpu, 55) : Math.min(w.cpu, 25), 12, 1, 100)
    w.ram = walk(w.ram, 3, 20, 95)
    w.net = walk(w.net, 1.2, 0, w.status === 'busy' ? 12 : 1)
    w.last_seen = t
  }
  completions = completions.filter((c) => c > t - 5)
}, 1000)

function snapshot() {
  const sum = (key, state) => jobs.reduce((n, j) => n + (state ? (j.state === state ? j.total - j.done - j.failed : 0) : j[key]), 0)
  const running = Object.values(workers).filter((w) => w.status === 'busy' && w.alive).length
  const queued = sum(null, 'queued') + sum(null, 'running') - running
  return {
    workers,
    queue_size: Math.max(0, queued),
    tps: completions.length / 5,
    totals: { done: sum('done'), failed: sum('failed'), queued: Math.max(0, queued), running },
    jobs: jobs.slice(0, 50).map(({ failRate, ...j }) => j),
    server_time: now(),
  }
}

function jobDetail(job) {
  const names = Object.keys(workers)
  const tasks = Array.from({ length: job.total }, (_, i) => {
    const state = i < job.done ? 'done' : i < job.done + job.failed ? 'failed' : i < job.done + job.failed + 3 && job.state === 'running' ? 'running' : 'queued'
    const task_id = `${job.job_id.slice(0, 8)}-t${i}`
    const image = job.kind === 'image'
    return {
      task_id, state,
      worker: state === 'queued' ? null : names[i % 3],
      result: image && state === 'done' ? `${task_id}.png` : null,
      output: !image && state === 'done' ? { slept: 2.0 } : null,
      error: state === 'failed' ? 'cannot identify image file <_io.BytesIO object>' : null,
      input: image ? `${(i % 3).toString().repeat(64)}` : null,
      filename: image ? job.name : null,
    }
  })
  const { failRate, ...summary } = job
  return { ...summary, tasks }
}

// ---- a tiny PNG encoder for the previews ----
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
const crc32 = (buf) => (buf.reduce((c, b) => CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8), 0xffffffff) ^ 0xffffffff) >>> 0
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length)
  out.writeUInt32BE(data.length, 0)
  out.write(type, 4, 'ascii')
  data.copy(out, 8)
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length)
  return out
}
function png(size, pixel) {
  const raw = Buffer.alloc((size * 3 + 1) * size)
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) raw.set(pixel(x / size, y / size), y * (size * 3 + 1) + 1 + x * 3)
  const head = Buffer.alloc(13)
  head.writeUInt32BE(size, 0)
  head.writeUInt32BE(size, 4)
  head.set([8, 2, 0, 0, 0], 8)
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', head), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))])
}
const scene = (seed) => (x, y) => {
  const sun = Math.hypot(x - 0.3 - seed * 0.2, y - 0.3) < 0.12
  if (sun) return [255, 214, 90]
  if (y > 0.62 + 0.08 * Math.sin(x * 9 + seed * 3)) return [40 + 60 * y, 120 + 60 * x, 70]
  return [70 + 120 * y, 140 + 80 * y, 235 - 30 * x]
}
const gray = (f) => (x, y) => { const [r, g, b] = f(x, y); const v = 0.299 * r + 0.587 * g + 0.114 * b; return [v, v, v] }
const images = new Map()
const image = (key, make) => images.get(key) ?? images.set(key, make()).get(key)

// ---- HTTP ----
const send = (res, status, body, type = 'application/json') =>
  res.writeHead(status, { 'Content-Type': type }).end(type === 'application/json' ? JSON.stringify(body) : body)

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost')
  const path = url.pathname
  const isApi = /^\/(events|ops|jobs|result|inputs|upload)/.test(path)
  if (isApi && TOKEN && req.headers.authorization !== `Bearer ${TOKEN}` && url.searchParams.get('token') !== TOKEN)
    return send(res, 401, { detail: 'Not authenticated' })

  if (path === '/events') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' })
    const push = () => res.write(`event: snapshot\ndata: ${JSON.stringify(snapshot())}\n\n`)
    push()
    const timer = setInterval(push, 1000)
    return req.on('close', () => clearInterval(timer))
  }
  if (path === '/ops') return send(res, 200, OPS)
  if (path === '/upload' && req.method === 'POST') {
    let body = ''
    for await (const part of req) body += part.toString('latin1')
    const field = (name) => new RegExp(`name="${name}"\\r\\n\\r\\n([^\\r]*)`).exec(body)?.[1]
    const files = [...body.matchAll(/name="file"; filename="([^"]*)"/g)].map((m) => m[1])
    const ops = field('ops') ?? 'grayscale'
    const copies = Number(field('copies') ?? 1)
    if (!files.length) return send(res, 422, { detail: [{ loc: ['body', 'file'], msg: 'Field required' }] })
    const unknown = ops.split(',').map((s) => s.split(':')[0].trim()).filter((n) => !OPS.some((o) => o.name === n))
    if (unknown.length) return send(res, 422, { detail: `unknown op: ${unknown[0]}` })
    if (!(copies >= 1 && copies <= 1000)) return send(res, 422, { detail: [{ loc: ['body', 'copies'], msg: 'Input should be less than or equal to 1000' }] })
    const job = addJob({ name: files[0], ops, total: files.length * copies, failRate: 0.02 })
    return send(res, 202, { status: 'sent', job_id: job.job_id, tasks: job.total })
  }
  let m
  if ((m = /^\/jobs\/([^/]+)\/zip$/.exec(path))) return send(res, 404, { detail: 'the fake server makes no zips' })
  if ((m = /^\/jobs\/([^/]+)$/.exec(path))) {
    const job = jobs.find((j) => j.job_id === decodeURIComponent(m[1]))
    return job ? send(res, 200, jobDetail(job)) : send(res, 404, { detail: 'Job not found' })
  }
  if ((m = /^\/inputs\/(\d)/.exec(path))) return send(res, 200, image(`in${m[1]}`, () => png(160, scene(Number(m[1])))), 'image/png')
  if ((m = /^\/result\/.*-t(\d+)\.png$/.exec(path))) {
    const seed = Number(m[1]) % 3
    return send(res, 200, image(`out${seed}`, () => png(160, gray(scene(seed)))), 'image/png')
  }
  if (isApi) return send(res, 404, { detail: 'Not Found' })

  const file = normalize(join(STATIC_DIR, path === '/' ? 'index.html' : path))
  if (!file.startsWith(STATIC_DIR)) return send(res, 404, 'not found', 'text/plain')
  try {
    send(res, 200, await readFile(file), TYPES[extname(file)] ?? 'application/octet-stream')
  } catch {
    send(res, 404, 'not found (run `npm run build` first?)', 'text/plain')
  }
}

createServer((req, res) => handle(req, res).catch((err) => send(res, 500, { detail: String(err) }))).listen(PORT, '127.0.0.1', () =>
  console.log(`fake coordinator on http://127.0.0.1:${PORT}/ serving ${STATIC_DIR}`),
)
