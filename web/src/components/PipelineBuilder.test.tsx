import { fireEvent, render, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { useState } from 'react'
import { I18nProvider } from '../i18n'
import { parseOps, type Step } from '../pipeline'
import { OPS } from '../test/fakes'
import { PipelineBuilder } from './PipelineBuilder'

function Harness({ initial = 'grayscale' }: { initial?: string }) {
  const [steps, setSteps] = useState<Step[]>(() => parseOps(initial, OPS).steps)
  const [text, setText] = useState(initial)
  return (
    <I18nProvider lang="en">
      <PipelineBuilder
        specs={OPS}
        steps={steps}
        opsText={text}
        onChange={(s, t) => {
          setSteps(s)
          setText(t)
        }}
      />
    </I18nProvider>
  )
}

const opsString = () => (screen.getByTestId('ops-input') as HTMLInputElement).value

async function addStep(name: string) {
  await userEvent.selectOptions(screen.getByLabelText('Operation to add'), name)
  await userEvent.click(screen.getByTestId('add-step'))
}

describe('PipelineBuilder', () => {
  it('adds steps with their default args to the ops string', async () => {
    render(<Harness />)
    await addStep('blur')
    await addStep('thumbnail')
    expect(opsString()).toBe('grayscale,blur:2,thumbnail:256')
  })

  it('clamps args into the op range and rounds int args', async () => {
    render(<Harness initial="blur:2,thumbnail:256" />)
    const radius = screen.getByLabelText('radius of step 1 (blur)')
    await userEvent.clear(radius)
    await userEvent.type(radius, '999')
    expect(opsString()).toBe('blur:50,thumbnail:256')
    fireEvent.blur(radius)
    expect(radius).toHaveValue(50)

    const size = screen.getByLabelText('size of step 2 (thumbnail)')
    fireEvent.change(size, { target: { value: '3' } })
    expect(opsString()).toBe('blur:50,thumbnail:16')
    fireEvent.change(size, { target: { value: '100.6' } })
    expect(opsString()).toBe('blur:50,thumbnail:101')
    fireEvent.change(radius, { target: { value: '-4' } })
    expect(opsString()).toBe('blur:0,thumbnail:101')
  })

  it('reorders and removes steps', async () => {
    render(<Harness initial="grayscale,invert,blur:1.5" />)
    await userEvent.click(screen.getByLabelText('Move step 3 up'))
    expect(opsString()).toBe('grayscale,blur:1.5,invert')
    await userEvent.click(screen.getByLabelText('Move step 1 down'))
    expect(opsString()).toBe('blur:1.5,grayscale,invert')
    expect(screen.getByLabelText('Move step 1 up')).toBeDisabled()
    await userEvent.click(screen.getByLabelText('Remove step 2 (grayscale)'))
    expect(opsString()).toBe('blur:1.5,invert')
  })

  it('reads a typed ops string back into steps and flags unknown ops', async () => {
    render(<Harness initial="" />)
    const input = screen.getByTestId('ops-input')
    fireEvent.change(input, { target: { value: 'invert, blur:3' } })
    expect(screen.getByTestId('step-0')).toHaveTextContent('invert')
    expect(screen.getByLabelText('radius of step 2 (blur)')).toHaveValue(3)
    fireEvent.change(input, { target: { value: 'invert,sparkle' } })
    expect(screen.getByText('Unknown operation: sparkle')).toBeInTheDocument()
    expect(opsString()).toBe('invert,sparkle')
  })
})
