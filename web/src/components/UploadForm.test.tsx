import { render, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { I18nProvider } from '../i18n'
import { installFetch, job, jsonResponse, OPS } from '../test/fakes'
import { UploadForm } from './UploadForm'

const png = (name = 'cat.png') => new File([new Uint8Array([137, 80, 78, 71])], name, { type: 'image/png' })
const created = { ...job({ job_id: 'abc123ff-0000', state: 'queued', total: 0, done: 0, failed: 0 }), open: true, max_upload_bytes: 20 * 1024 * 1024, max_files: 100 }

/** A coordinator that takes every file except the ones named in `bad` (with their reasons). */
function coordinator(bad: Record<string, string> = {}, createAnswer = () => jsonResponse(created, 201)) {
  return installFetch((path, init) => {
    if (path === 'ops') return jsonResponse(OPS)
    if (path === 'jobs') return createAnswer()
    if (path.endsWith('/files')) {
      const names = (init!.body as FormData).getAll('file').map((f) => (f as File).name)
      const files = names.map((name) =>
        name in bad ? { name, status: 'rejected', tasks: 0, detail: bad[name] } : { name, status: 'queued', tasks: 1 },
      )
      return jsonResponse({ job_id: created.job_id, tasks: files.filter((f) => f.status === 'queued').length, files, rejected: 0 }, 202)
    }
    return jsonResponse({ ...created, open: false })
  })
}

function setup(fetchMock: ReturnType<typeof coordinator>, onUploaded = vi.fn()) {
  render(
    <I18nProvider lang="en">
      <UploadForm onUploaded={onUploaded} />
    </I18nProvider>,
  )
  return { fetchMock, onUploaded }
}

const calls = (fetchMock: ReturnType<typeof coordinator>) => fetchMock.mock.calls.map(([url]) => String(url))

async function chooseAndSubmit(files: File[] = [png()], input = 'file-input') {
  await screen.findByTestId('step-0')
  await userEvent.upload(screen.getByTestId(input), files)
  await userEvent.click(screen.getByTestId('upload-submit'))
}

describe('UploadForm', () => {
  it('sends the good files of a selection and lists the bad one with its reason', async () => {
    const ten = Array.from({ length: 10 }, (_, i) => png(`p${i}.png`))
    const { onUploaded } = setup(coordinator({ 'p3.png': 'truncated or corrupt PNG image' }))
    await chooseAndSubmit(ten)
    expect(await screen.findByTestId('upload-success')).toHaveTextContent('Job abc123ff sent: 9 tasks.')
    const refused = screen.getByTestId('refused-files')
    expect(within(refused).getAllByTestId('refused-file')).toHaveLength(1)
    expect(refused).toHaveTextContent('p3.png: truncated or corrupt PNG image')
    expect(onUploaded).toHaveBeenCalledWith('abc123ff-0000')
    expect(screen.queryByTestId('error-message')).not.toBeInTheDocument()
  })

  it('creates one job, sends the files in batches within its limits, then closes it', async () => {
    const fetchMock = coordinator()
    const small = { ...created, max_files: 2 }
    fetchMock.mockImplementationOnce(async () => jsonResponse(OPS))
    setup(fetchMock)
    fetchMock.mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const path = String(input).replace(/^\//, '')
      if (path === 'jobs') return jsonResponse(small, 201)
      if (path.endsWith('/files')) {
        const names = (init!.body as FormData).getAll('file').map((f) => (f as File).name)
        return jsonResponse({ job_id: 'abc123ff-0000', tasks: names.length, rejected: 0, files: names.map((name) => ({ name, status: 'queued', tasks: 1 })) }, 202)
      }
      return jsonResponse({ ...small, open: false })
    })
    // The folder picker takes every file (no accept filter): non-images are left out here.
    await chooseAndSubmit([png('a.png'), png('b.png'), png('c.png'), new File(['x'], 'notes.txt')], 'folder-input')
    expect(await screen.findByTestId('upload-success')).toHaveTextContent('sent: 3 tasks.')
    const sent = calls(fetchMock).slice(1)
    expect(sent).toEqual(['/jobs', '/jobs/abc123ff-0000/files', '/jobs/abc123ff-0000/files', '/jobs/abc123ff-0000/close'])
    const body = JSON.parse(fetchMock.mock.calls[1][1]!.body as string)
    expect(body).toEqual({ ops: 'grayscale', copies: 1, name: 'a.png +2' })
    expect(screen.getByTestId('refused-files')).toHaveTextContent('notes.txt: not an image')
  })

  it('shows the API error message when the job cannot be created', async () => {
    setup(coordinator({}, () => jsonResponse({ detail: 'ops: step 2 "blur:500": blur takes a number' }, 422)))
    await chooseAndSubmit()
    expect(await screen.findByTestId('error-message')).toHaveTextContent('ops: step 2 "blur:500": blur takes a number')
  })

  it('says so when the coordinator cannot be reached', async () => {
    setup(
      coordinator({}, () => {
        throw new TypeError('Failed to fetch')
      }),
    )
    await chooseAndSubmit()
    expect(await screen.findByTestId('error-message')).toHaveTextContent('Could not reach the coordinator.')
  })

  it('asks for a file before sending anything', async () => {
    const { fetchMock } = setup(coordinator())
    await screen.findByTestId('step-0')
    await userEvent.click(screen.getByTestId('upload-submit'))
    expect(screen.getByTestId('error-message')).toHaveTextContent('Choose at least one image.')
    expect(fetchMock).toHaveBeenCalledTimes(1)
  })

  it('cancels a job that took no file, so it does not read as done', async () => {
    const { fetchMock } = setup(coordinator({ 'cat.png': 'empty file; expected an image' }))
    await chooseAndSubmit()
    expect(await screen.findByTestId('refused-files')).toHaveTextContent('cat.png: empty file; expected an image')
    await waitFor(() => expect(calls(fetchMock)).toContain('/jobs/abc123ff-0000/cancel'))
  })

  it('sends the bearer token once one is stored', async () => {
    localStorage.setItem('sd.token', 's3cret')
    const { fetchMock } = setup(coordinator())
    await chooseAndSubmit()
    await waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(4))
    const headers = new Headers(fetchMock.mock.calls[1][1]!.headers)
    expect(headers.get('Authorization')).toBe('Bearer s3cret')
  })
})
