import { applyDelta, type SnapshotDelta } from './delta'
import { snapshot, worker } from './test/fakes'

describe('applyDelta', () => {
  it('changes only the fields and workers the delta names, and drops the gone ones', () => {
    const before = snapshot({
      workers: {
        a: worker({ name: 'a', cpu: 10 }),
        b: worker({ name: 'b', cpu: 20 }),
        c: worker({ name: 'c' }),
      },
      queue_size: 4,
    })
    const delta: SnapshotDelta = {
      workers: { a: { cpu: 55, status: 'paused' }, d: worker({ name: 'd' }) },
      gone: ['c'],
      queue_size: 9,
      server_time: before.server_time + 1,
    }
    const after = applyDelta(before, delta)
    expect(Object.keys(after.workers).sort()).toEqual(['a', 'b', 'd'])
    expect(after.workers.a).toMatchObject({ cpu: 55, status: 'paused', name: 'a', ram: before.workers.a.ram })
    expect(after.workers.b).toBe(before.workers.b)
    expect(after.queue_size).toBe(9)
    expect(after.jobs).toBe(before.jobs)
    expect(after.server_time).toBe(before.server_time + 1)
    expect(before.workers.a.cpu).toBe(10)
  })
})
