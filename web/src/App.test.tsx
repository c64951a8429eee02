import { act, render, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { App } from './App'
import { I18nProvider } from './i18n'
import { installEventSource, installFetch, job, jsonResponse, MockEventSource, OPS, snapshot, worker } from './test/fakes'

/** Renders the page and waits for the ops list, so no state update lands after the test. */
async function renderApp() {
  render(
    <I18nProvider>
      <App />
    </I18nProvider>,
  )
  await screen.findAllByTestId(/^step-\d+$/)
}

beforeEach(() => {
  installEventSource()
  installFetch((path) => (path === 'ops' ? jsonResponse(OPS) : jsonResponse({ detail: 'Not Found' }, 404)))
})

describe('live snapshot', () => {
  it('applies the changes pushed after the first snapshot', async () => {
    localStorage.setItem('sd.lang', 'en')
    await renderApp()
    const source = MockEventSource.latest
    act(() => source.emitSnapshot(snapshot({ workers: { a: worker({ name: 'a' }), b: worker({ name: 'b' }) } })))
    act(() =>
      source.emitDelta({
        workers: { a: { status: 'paused', task_id: null }, c: worker({ name: 'c', status: 'free', task_id: null }) },
        gone: ['b'],
        queue_size: 12,
        server_time: 1_700_000_001,
      }),
    )
    expect(screen.getByTestId('queue-size')).toHaveTextContent('12')
    expect(screen.getByTestId('node-card-a')).toHaveAttribute('data-status', 'paused')
    expect(screen.getByTestId('node-card-c')).toHaveAttribute('data-status', 'free')
    expect(screen.queryByTestId('node-card-b')).not.toBeInTheDocument()
  })

  it('shows the pushed cluster state', async () => {
    localStorage.setItem('sd.lang', 'en')
    await renderApp()
    expect(MockEventSource.latest.url).toBe('/events')
    act(() =>
      MockEventSource.latest.emitSnapshot(
        snapshot({
          workers: {
            a: worker({ name: 'a', is_local: true }),
            b: worker({ name: 'b', alive: false, status: 'offline', last_seen: 1_699_999_970 }),
          },
          jobs: [job({ job_id: 'j1', done: 3, failed: 1, total: 4 })],
        }),
      ),
    )
    expect(screen.getByTestId('queue-size')).toHaveTextContent('7')
    expect(screen.getByTestId('tps')).toHaveTextContent('3.5')
    expect(screen.getByTestId('workers-alive')).toHaveTextContent('1 / 2')
    expect(screen.getByTestId('node-card-a')).toHaveAttribute('data-status', 'busy')
    expect(screen.getByTestId('node-card-b')).toHaveAttribute('data-status', 'offline')
    expect(within(screen.getByTestId('node-card-b')).getByText('last seen 30 s ago')).toBeInTheDocument()
    const progress = within(screen.getByTestId('job-row-j1')).getByRole('progressbar')
    expect(progress).toHaveAttribute('aria-valuenow', '75')

    act(() => MockEventSource.latest.emitSnapshot(snapshot({ jobs: [job({ job_id: 'j1', done: 4, failed: 0, total: 4, state: 'done' })] })))
    expect(within(screen.getByTestId('job-row-j1')).getByRole('progressbar')).toHaveAttribute('aria-valuenow', '100')
  })

  it('shows the disconnected banner after an error until the next snapshot', async () => {
    localStorage.setItem('sd.lang', 'es')
    await renderApp()
    const source = MockEventSource.latest
    act(() => source.emitSnapshot(snapshot()))
    expect(screen.queryByTestId('disconnected-banner')).not.toBeInTheDocument()

    act(() => source.emitError())
    expect(screen.getByTestId('disconnected-banner')).toHaveTextContent('Sin conexión con el coordinador — reconectando…')
    // The last known state stays on screen meanwhile.
    expect(screen.getByTestId('queue-size')).toHaveTextContent('7')

    act(() => source.emitSnapshot(snapshot({ queue_size: 2 })))
    expect(screen.queryByTestId('disconnected-banner')).not.toBeInTheDocument()
    expect(screen.getByTestId('queue-size')).toHaveTextContent('2')
  })

  it('reconnects by itself when the browser gives the stream up', async () => {
    localStorage.setItem('sd.lang', 'en')
    await renderApp()
    vi.useFakeTimers()
    try {
      const first = MockEventSource.latest
      act(() => first.emitError(MockEventSource.CLOSED))
      expect(screen.getByTestId('disconnected-banner')).toHaveTextContent('Disconnected from the coordinator — reconnecting…')
      act(() => vi.advanceTimersByTime(1100))
      const second = MockEventSource.latest
      expect(second).not.toBe(first)
      act(() => second.emitSnapshot(snapshot()))
      expect(screen.queryByTestId('disconnected-banner')).not.toBeInTheDocument()
    } finally {
      vi.useRealTimers()
    }
  })

  it('asks for a token on 401 and then sends it on the stream', async () => {
    localStorage.setItem('sd.lang', 'en')
    installFetch((path) => (path === 'ops' ? jsonResponse(OPS) : jsonResponse({ detail: 'Not authenticated' }, 401)))
    await renderApp()
    act(() => MockEventSource.latest.emitError(MockEventSource.CLOSED))
    const input = await screen.findByTestId('token-input')
    await userEvent.type(input, 'tok en')
    await userEvent.click(screen.getByRole('button', { name: 'Save' }))
    expect(screen.queryByTestId('token-prompt')).not.toBeInTheDocument()
    expect(localStorage.getItem('sd.token')).toBe('tok en')
    await waitFor(() => expect(MockEventSource.latest.url).toBe('/events?token=tok%20en'))
  })
})

describe('language', () => {
  it('follows the browser language by default', async () => {
    vi.spyOn(navigator, 'language', 'get').mockReturnValue('es-ES')
    vi.spyOn(navigator, 'languages', 'get').mockReturnValue(['es-ES', 'en'])
    await renderApp()
    expect(screen.getByRole('heading', { name: /Nodos/ })).toBeInTheDocument()
    expect(screen.getByTestId('lang-es')).toHaveAttribute('aria-pressed', 'true')
  })

  it('switches the texts and remembers the choice', async () => {
    localStorage.setItem('sd.lang', 'es')
    await renderApp()
    act(() => MockEventSource.latest.emitSnapshot(snapshot()))
    expect(screen.getByText('Cola')).toBeInTheDocument()
    expect(screen.getByTestId('upload-submit')).toHaveTextContent('Procesar')

    await userEvent.click(within(screen.getByTestId('lang-switch')).getByRole('button', { name: 'EN' }))
    expect(screen.getByText('Queue')).toBeInTheDocument()
    expect(screen.getByTestId('upload-submit')).toHaveTextContent('Process')
    expect(screen.getByRole('heading', { name: /Nodes/ })).toBeInTheDocument()
    expect(localStorage.getItem('sd.lang')).toBe('en')
    expect(document.documentElement.lang).toBe('en')
  })
})
