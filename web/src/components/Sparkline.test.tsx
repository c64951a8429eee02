import { render, screen } from '@testing-library/react'
import { Sparkline } from './Sparkline'

const line = () => screen.getByRole('img', { name: 'cpu' }).querySelector('.sparkline-line')?.getAttribute('d') ?? ''

describe('Sparkline', () => {
  it('scales time to the span of history (at least 30 s) and values to max', () => {
    const points = [60, 64, 68].map((t, i) => ({ t, v: i * 50 }))
    render(<Sparkline points={points} now={68} windowS={300} max={100} height={20} label="cpu" />)
    expect(line()).toBe('M73.33,19.00L86.67,10.00L100.00,1.00')
  })

  it('leaves a gap where samples are missing', () => {
    const points = [0, 1, 2, 20, 21].map((t) => ({ t, v: 50 }))
    render(<Sparkline points={points} now={21} windowS={300} max={100} label="cpu" />)
    expect(line().match(/M/g)).toHaveLength(2)
  })

  it('draws nothing from a single sample', () => {
    render(<Sparkline points={[{ t: 1, v: 5 }]} now={1} windowS={300} label="cpu" />)
    expect(line()).toBe('')
  })
})
