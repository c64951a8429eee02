import { render, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { I18nProvider } from '../i18n'
import { installFetch, job, jsonResponse } from '../test/fakes'
import type { JobDetail } from '../types'
import { JobView } from './JobView'

const detail: JobDetail = {
  ...job({ job_id: 'job-1', state: 'failed', total: 3, done: 2, failed: 1 }),
  tasks: [
    { task_id: 't1', state: 'done', worker: 'node-1', result: 't1.png', output: null, error: null, input: 'ab12', filename: 'cat.png' },
    { task_id: 't2', state: 'done', worker: 'node-2', result: 't2.png', output: null, error: null, input: 'ab12', filename: 'cat.png', rerun: 'host lost: node-3' },
    { task_id: 't3', state: 'failed', worker: 'node-2', result: null, output: null, error: 'cannot identify image file', input: 'cd34', filename: 'bad.png' },
  ],
}

function renderView(lang: 'en' | 'es' = 'en', upload?: { jobId: string; sent: number; total: number }) {
  const fetchMock = installFetch((path) =>
    path === 'jobs/job-1?limit=48' ? jsonResponse(detail) : path === 'jobs/job-1/cancel' ? jsonResponse({ ...detail, state: 'cancelled' }) : jsonResponse({ detail: 'Job not found' }, 404),
  )
  render(
    <I18nProvider lang={lang}>
      <JobView jobId="job-1" now={1_700_000_000} upload={upload} onClose={() => undefined} />
    </I18nProvider>,
  )
  return fetchMock
}

describe('JobView', () => {
  it('shows the upload beside the job while this page still sends its files', async () => {
    renderView('es', { jobId: 'job-1', sent: 200, total: 800 })
    const upload = await screen.findByTestId('job-upload-progress')
    expect(upload).toHaveTextContent('Subiendo: 200 de 800 imágenes enviadas')
    expect(within(upload).getByRole('progressbar', { name: 'Subida' })).toHaveAttribute('aria-valuenow', '25')
  })

  it('asks the tasks a page at a time and cancels a running job', async () => {
    const running = { ...detail, state: 'running' as const, tasks_next: 48 }
    const fetchMock = installFetch((path) => (path.startsWith('jobs/job-1?') || path === 'jobs/job-1/cancel' ? jsonResponse(running) : jsonResponse({}, 404)))
    render(
      <I18nProvider lang="en">
        <JobView jobId="job-1" now={1_700_000_000} onClose={() => undefined} />
      </I18nProvider>,
    )
    await userEvent.click(await screen.findByTestId('show-more'))
    await userEvent.click(screen.getByTestId('cancel-job'))
    const paths = fetchMock.mock.calls.map(([url]) => String(url))
    expect(paths).toContain('/jobs/job-1?limit=48')
    expect(paths).toContain('/jobs/job-1?limit=96')
    expect(paths).toContain('/jobs/job-1/cancel')
    expect(fetchMock.mock.calls.find(([url]) => String(url) === '/jobs/job-1/cancel')![1]!.method).toBe('POST')
  })

  it('lists every task with its state, worker, error and download', async () => {
    renderView()
    const link = await screen.findByTestId('result-link-t1')
    expect(link).toHaveAttribute('href', '/result/t1.png')
    expect(screen.getByTestId('result-link-t2')).toHaveAttribute('href', '/result/t2.png')
    expect(screen.queryByTestId('result-link-t3')).not.toBeInTheDocument()
    expect(screen.getByTestId('task-error-t3')).toHaveTextContent('cannot identify image file')
    expect(within(screen.getByTestId('task-t3')).getByText('node-2')).toBeInTheDocument()
    expect(screen.getByTestId('zip-link')).toHaveAttribute('href', '/jobs/job-1/zip')
    const befores = screen.getAllByAltText('Before') as HTMLImageElement[]
    expect(befores[0].getAttribute('src')).toBe('/inputs/ab12')
  })

  it('opens a before/after comparison', async () => {
    renderView()
    const [first] = await screen.findAllByRole('button', { name: 'Compare before and after of cat.png' })
    await userEvent.click(first)
    const dialog = screen.getByTestId('compare-dialog')
    expect(within(dialog).getByAltText('After')).toHaveAttribute('src', '/result/t1.png')
    await userEvent.keyboard('{Escape}')
    expect(screen.queryByTestId('compare-dialog')).not.toBeInTheDocument()
  })

  it('adds the token to image and download URLs', async () => {
    localStorage.setItem('sd.token', 'k')
    renderView()
    expect(await screen.findByTestId('result-link-t1')).toHaveAttribute('href', '/result/t1.png?token=k')
  })

  it('marks the tasks re-run because their host was lost, in the page language', async () => {
    renderView('es')
    const mark = await screen.findByTestId('task-rerun-t2')
    expect(mark).toHaveTextContent('re-ejecutada: se perdió el nodo node-3')
    expect(screen.queryByTestId('task-rerun-t1')).not.toBeInTheDocument()
  })
})
