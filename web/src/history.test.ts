import { appendSnapshot, EMPTY_HISTORY } from './history'
import { snapshot, worker } from './test/fakes'

describe('appendSnapshot', () => {
  it('keeps a window of samples per node and for the throughput', () => {
    let history = EMPTY_HISTORY
    for (let t = 0; t < 10; t++) {
      history = appendSnapshot(history, snapshot({ server_time: t, tps: t, workers: { a: worker({ name: 'a', cpu: t * 10 }) } }), 5)
    }
    expect(history.tps.map((p) => p.t)).toEqual([4, 5, 6, 7, 8, 9])
    expect(history.nodes.a.cpu.at(-1)).toEqual({ t: 9, v: 90 })
  })

  it('does not record an offline node and forgets removed ones', () => {
    let history = appendSnapshot(EMPTY_HISTORY, snapshot({ server_time: 1, workers: { a: worker({ name: 'a' }), b: worker({ name: 'b' }) } }))
    history = appendSnapshot(history, snapshot({ server_time: 2, workers: { a: worker({ name: 'a', alive: false, status: 'offline' }) } }))
    expect(history.nodes.a.cpu).toHaveLength(1)
    expect(history.nodes.b).toBeUndefined()
  })
})
