import { formatDetail } from './api'

describe('formatDetail', () => {
  it('keeps a plain message', () => {
    expect(formatDetail('upload larger than 20 MB')).toBe('upload larger than 20 MB')
  })

  it('turns validation errors into one line each, without the body prefix', () => {
    expect(
      formatDetail([
        { loc: ['body', 'copies'], msg: 'too many' },
        { loc: ['query', 'x'], msg: 'bad' },
        { msg: 'no location' },
      ]),
    ).toBe('copies: too many\nquery.x: bad\nno location')
  })
})
