import { installFetch, jsonResponse } from './test/fakes'
import { PARALLEL_BATCHES, sendFiles } from './upload'

const png = (name: string) => ({ file: new File([new Uint8Array([137, 80, 78, 71])], name, { type: 'image/png' }), name })
const created = { job_id: 'abc123ff-0000', state: 'queued', total: 0, done: 0, failed: 0, open: true, max_upload_bytes: 1 << 20, max_files: 1 }

describe('sendFiles', () => {
  it(`keeps ${PARALLEL_BATCHES} batches in flight, sends every file once, then closes the job`, async () => {
    let inFlight = 0
    let most = 0
    const received: string[] = []
    const fetchMock = installFetch(async (path, init) => {
      if (path === 'jobs') return jsonResponse(created, 201)
      if (path.endsWith('/files')) {
        inFlight += 1
        most = Math.max(most, inFlight)
        await new Promise((resolve) => setTimeout(resolve, 5))
        inFlight -= 1
        const names = (init!.body as FormData).getAll('file').map((f) => (f as File).name)
        received.push(...names)
        return jsonResponse({ job_id: created.job_id, tasks: names.length, rejected: 0, files: names.map((name) => ({ name, status: 'queued', tasks: 1 })) }, 202)
      }
      return jsonResponse({ ...created, open: false })
    })
    const names = Array.from({ length: 10 }, (_, i) => `p${i}.png`)
    const progress: number[] = []
    const sent = await sendFiles(names.map(png), 'grayscale', 1, () => undefined, (p) => progress.push(p.sent))
    expect(sent.tasks).toBe(10)
    expect(received.sort()).toEqual([...names].sort())
    expect(most).toBe(PARALLEL_BATCHES)
    expect(progress.at(-1)).toBe(10)
    expect(fetchMock.mock.calls.map(([url]) => String(url)).at(-1)).toBe('/jobs/abc123ff-0000/close')
  })

  it('stops at a failed batch, throws its error once the others end, and closes the job with what it took', async () => {
    let batch = 0
    const fetchMock = installFetch(async (path) => {
      if (path === 'jobs') return jsonResponse(created, 201)
      if (path.endsWith('/files')) {
        batch += 1
        if (batch === 2) return jsonResponse({ detail: 'disk full' }, 507)
        return jsonResponse({ job_id: created.job_id, tasks: 1, rejected: 0, files: [{ name: 'x', status: 'queued', tasks: 1 }] }, 202)
      }
      return jsonResponse({ ...created, open: false })
    })
    const files = Array.from({ length: 10 }, (_, i) => png(`p${i}.png`))
    await expect(sendFiles(files, 'grayscale', 1, () => undefined, () => undefined)).rejects.toThrow('disk full')
    const paths = fetchMock.mock.calls.map(([url]) => String(url))
    expect(paths.filter((p) => p.endsWith('/files')).length).toBeLessThan(10)
    expect(paths.at(-1)).toBe('/jobs/abc123ff-0000/close')
  })
})
