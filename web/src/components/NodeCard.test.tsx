import { cleanup, render, screen, within } from '@testing-library/react'
import { I18nProvider } from '../i18n'
import { worker } from '../test/fakes'
import { NodeCard } from './NodeCard'

const NOW = 1_700_000_000

function renderCard(
  overrides: Parameters<typeof worker>[0],
  now = NOW,
  { lang = 'en', coordinatorVersion }: { lang?: 'en' | 'es'; coordinatorVersion?: string } = {},
) {
  render(
    <I18nProvider lang={lang}>
      <NodeCard worker={worker(overrides)} now={now} coordinatorVersion={coordinatorVersion} />
    </I18nProvider>,
  )
  return screen.getByTestId(`node-card-${overrides?.name ?? 'node-1'}`)
}

describe('NodeCard', () => {
  it('shows the live values, the current task and the counters', () => {
    const card = renderCard({ name: 'node-1' })
    expect(card).toHaveAttribute('data-status', 'busy')
    expect(within(card).getByText('node-1')).toBeInTheDocument()
    expect(within(card).getByText('100.64.0.7')).toBeInTheDocument()
    expect(within(card).getByTestId('metric-cpu')).toHaveTextContent('42 %')
    expect(within(card).getByTestId('metric-ram')).toHaveTextContent('63 %')
    expect(within(card).getByTestId('metric-net')).toHaveTextContent('1.25 MB/s')
    expect(within(card).getByTestId('current-task')).toHaveTextContent('0f3c9a2e')
    expect(within(card).getByText('busy')).toBeInTheDocument()
    expect(within(card).getByTestId('processed')).toHaveTextContent('120')
    expect(within(card).getByText('consumers').nextSibling).toHaveTextContent('4')
    expect(within(card).getByText('prefetch').nextSibling).toHaveTextContent('8')
    expect(within(card).queryByTestId('coordinator-badge')).not.toBeInTheDocument()
    expect(card).not.toHaveClass('node-offline')
  })

  it('names the node’s operating system, in each language', () => {
    const card = renderCard({ name: 'lab-pc-3', os: 'Windows 11' })
    expect(within(card).getByTestId('node-os')).toHaveTextContent('Operating system: Windows 11')
    expect(within(card).getByTestId('node-os')).toHaveAttribute('title', 'Operating system')
    cleanup()
    render(
      <I18nProvider lang="es">
        <NodeCard worker={worker({ name: 'mac', os: 'macOS 14.5' })} now={NOW} />
      </I18nProvider>,
    )
    expect(screen.getByTestId('node-os')).toHaveTextContent('Sistema operativo: macOS 14.5')
  })

  it('shows no operating system for an older worker that does not send it', () => {
    const card = renderCard({ name: 'old' })
    expect(within(card).queryByTestId('node-os')).not.toBeInTheDocument()
  })

  it('badges the node that runs on the coordinator', () => {
    const card = renderCard({ name: 'local', is_local: true, status: 'free', task_id: null })
    expect(within(card).getByTestId('coordinator-badge')).toHaveTextContent('coordinator')
    expect(within(card).getByText('idle')).toBeInTheDocument()
    expect(card).toHaveAttribute('data-status', 'free')
  })

  it('greys an offline node and says when it was last seen', () => {
    const card = renderCard({ name: 'gone', alive: false, status: 'offline', last_seen: NOW - 12 })
    expect(card).toHaveAttribute('data-status', 'offline')
    expect(card).toHaveClass('node-offline')
    expect(within(card).getByTestId('last-seen')).toHaveTextContent('last seen 12 s ago')
    expect(within(card).queryByTestId('current-task')).not.toBeInTheDocument()
  })

  it('treats a node that stopped reporting as offline whatever its last status', () => {
    const card = renderCard({ name: 'silent', alive: false, status: 'busy', last_seen: NOW - 5 })
    expect(card).toHaveAttribute('data-status', 'offline')
    expect(within(card).getByTestId('last-seen')).toHaveTextContent('last seen 5 s ago')
  })

  it('shows the version its worker runs, unflagged on the coordinator\'s release line', () => {
    const card = renderCard({ name: 'same', version: '0.1.3' }, NOW, { coordinatorVersion: '0.1.0' })
    const version = within(card).getByTestId('node-version')
    expect(version).toHaveTextContent('v0.1.3')
    expect(version).toHaveAttribute('data-skew', 'false')
    expect(version).toHaveAttribute('title', 'Version of this worker')
  })

  it('flags a worker on another major or minor than the coordinator, in English and Spanish', () => {
    const card = renderCard({ name: 'newer', version: '0.2.0' }, NOW, { coordinatorVersion: '0.1.0' })
    const version = within(card).getByTestId('node-version')
    expect(version).toHaveTextContent('v0.2.0 ≠ v0.1.0')
    expect(version).toHaveAttribute('data-skew', 'true')
    expect(version).toHaveClass('node-version-skew')
    expect(version).toHaveAttribute(
      'title',
      'Runs 0.2.0, the coordinator 0.1.0: install the same release on both.',
    )
    cleanup()
    const spanish = renderCard({ name: 'older', version: '1.1.0' }, NOW, { lang: 'es', coordinatorVersion: '2.1.0' })
    expect(within(spanish).getByTestId('node-version')).toHaveAttribute(
      'title',
      'Ejecuta 1.1.0 y el coordinador 2.1.0: instala la misma versión en ambos.',
    )
  })

  it('flags a worker too old to say its version', () => {
    const card = renderCard({ name: 'old', version: null }, NOW, { coordinatorVersion: '0.1.0' })
    const version = within(card).getByTestId('node-version')
    expect(version).toHaveTextContent('version ? ≠ v0.1.0')
    expect(version).toHaveAttribute('data-skew', 'true')
  })

  it('shows the round trip of its reports and the seconds since the last one', () => {
    const card = renderCard({ name: 'far', rtt_ms: 41.6, last_seen: NOW - 0.4 })
    expect(within(card).getByTestId('node-link')).toHaveTextContent('↔ 42 ms · 0.4 s ago')
  })

  it('says in minutes how long ago a node gone for a while was seen', () => {
    const card = renderCard({ name: 'lid', alive: false, status: 'offline', last_seen: NOW - 600 })
    expect(within(card).getByTestId('last-seen')).toHaveTextContent('last seen 10 min ago')
    expect(within(card).queryByTestId('node-link')).not.toBeInTheDocument()
  })

  it('says why a paused node takes no tasks, in each language', () => {
    const card = renderCard({ name: 'lab-pc-4', status: 'paused', task_id: null, paused_for: ['disk'] })
    expect(card).toHaveAttribute('data-status', 'paused')
    expect(within(card).getByTestId('paused-for')).toHaveTextContent('disk full: waiting for room')
    cleanup()
    const es = renderCard({ name: 'lab-pc-4', status: 'paused', task_id: null, paused_for: ['cpu', 'disk'] }, NOW, {
      lang: 'es',
    })
    expect(within(es).getByTestId('paused-for')).toHaveTextContent(
      'CPU por encima de CPU_LIMIT, disco lleno: esperando espacio',
    )
  })
})
