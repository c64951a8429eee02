import { render, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { EMPTY_HISTORY } from '../history'
import { I18nProvider, type Lang } from '../i18n'
import { worker } from '../test/fakes'
import type { Worker } from '../types'
import { NodeGrid } from './NodeGrid'

const NOW = 1_700_000_000

/** A lab: 4 free, 3 busy, 13 paused, 14 offline PCs. */
function lab(): Worker[] {
  const nodes: Worker[] = []
  const add = (n: number, status: Worker['status'], alive = true) => {
    for (let i = 0; i < n; i++) {
      const name = `${status}-pc-${String(i).padStart(2, '0')}`
      nodes.push(worker({ name, status, alive, cpu: i, task_id: status === 'busy' ? 'abcd' : null }))
    }
  }
  add(4, 'free')
  add(3, 'busy')
  add(13, 'paused')
  add(14, 'offline', false)
  return nodes
}

function renderGrid(workers: Worker[], lang: Lang = 'en') {
  render(
    <I18nProvider lang={lang}>
      <NodeGrid workers={workers} history={EMPTY_HISTORY} now={NOW} />
    </I18nProvider>,
  )
}

const cardNames = (root: HTMLElement = document.body) =>
  within(root)
    .queryAllByTestId(/^node-card-/)
    .map((card) => card.getAttribute('data-testid')!.slice('node-card-'.length))

describe('NodeGrid with many nodes', () => {
  it('groups paused and offline nodes, folded when large', () => {
    renderGrid(lab())
    expect(cardNames()).toHaveLength(7)
    const paused = screen.getByTestId('node-group-paused')
    expect(paused).not.toHaveAttribute('open')
    expect(within(paused).getByText('Paused (13)')).toBeInTheDocument()
    expect(within(screen.getByTestId('node-group-offline')).getByText('Offline (14)')).toBeInTheDocument()
  })

  it('opens a group on demand and shows its cards', async () => {
    renderGrid(lab())
    await userEvent.click(screen.getByText('Paused (13)'))
    expect(cardNames(screen.getByTestId('node-group-paused'))).toHaveLength(13)
  })

  it('filters by state and searches by name', { timeout: 20_000 }, async () => {
    renderGrid(lab())
    await userEvent.selectOptions(screen.getByTestId('node-filter'), 'paused')
    expect(cardNames()).toHaveLength(13)
    expect(cardNames().every((name) => name.startsWith('paused-'))).toBe(true)
    expect(screen.getByTestId('node-count')).toHaveTextContent('13 of 34')

    await userEvent.selectOptions(screen.getByTestId('node-filter'), 'all')
    await userEvent.type(screen.getByTestId('node-search'), 'PC-02')
    expect(cardNames().sort()).toEqual(['busy-pc-02', 'free-pc-02', 'offline-pc-02', 'paused-pc-02'])

    await userEvent.clear(screen.getByTestId('node-search'))
    await userEvent.type(screen.getByTestId('node-search'), 'zz')
    expect(screen.getByText('No node matches.')).toBeInTheDocument()
  })

  it('sorts by state or by CPU', async () => {
    renderGrid(lab())
    await userEvent.selectOptions(screen.getByTestId('node-sort'), 'status')
    expect(cardNames().slice(0, 3).every((name) => name.startsWith('busy-'))).toBe(true)
    await userEvent.selectOptions(screen.getByTestId('node-sort'), 'cpu')
    expect(cardNames().slice(0, 2)).toEqual(['free-pc-03', 'busy-pc-02'])
  })

  it('speaks Spanish', () => {
    renderGrid(lab(), 'es')
    expect(screen.getByText('En pausa (13)')).toBeInTheDocument()
    expect(screen.getByText('Desconectados (14)')).toBeInTheDocument()
    expect(screen.getByPlaceholderText('Buscar nodos por nombre')).toBeInTheDocument()
  })
})
