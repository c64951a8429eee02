import { render, screen, waitFor } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { I18nProvider } from '../i18n'
import { installFetch, jsonResponse, OPS } from '../test/fakes'
import { UploadForm } from './UploadForm'

const png = () => new File([new Uint8Array([137, 80, 78, 71])], 'cat.png', { type: 'image/png' })

function setup(uploadResponse: () => Response, onUploaded = vi.fn()) {
  const fetchMock = installFetch((path) => (path === 'ops' ? jsonResponse(OPS) : uploadResponse()))
  render(
    <I18nProvider lang="en">
      <UploadForm onUploaded={onUploaded} />
    </I18nProvider>,
  )
  return { fetchMock, onUploaded }
}

async function chooseAndSubmit() {
  await screen.findByTestId('step-0')
  await userEvent.upload(screen.getByTestId('file-input'), png())
  await userEvent.click(screen.getByTestId('upload-submit'))
}

describe('UploadForm', () => {
  it('shows the API error message', async () => {
    setup(() => jsonResponse({ detail: 'not a supported image: cat.png' }, 415))
    await chooseAndSubmit()
    expect(await screen.findByTestId('error-message')).toHaveTextContent('not a supported image: cat.png')
  })

  it('renders FastAPI validation errors readably', async () => {
    setup(() =>
      jsonResponse(
        {
          detail: [
            { loc: ['body', 'copies'], msg: 'Input should be less than or equal to 1000', type: 'less_than_equal' },
            { loc: ['body', 'ops'], msg: 'unknown op: sparkle', type: 'value_error' },
          ],
        },
        422,
      ),
    )
    await chooseAndSubmit()
    const error = await screen.findByTestId('error-message')
    expect(error).toHaveTextContent('copies: Input should be less than or equal to 1000')
    expect(error).toHaveTextContent('ops: unknown op: sparkle')
  })

  it('says so when the coordinator cannot be reached', async () => {
    setup(() => {
      throw new TypeError('Failed to fetch')
    })
    await chooseAndSubmit()
    expect(await screen.findByTestId('error-message')).toHaveTextContent('Could not reach the coordinator.')
  })

  it('asks for a file before sending anything', async () => {
    const { fetchMock } = setup(() => jsonResponse({}, 500))
    await screen.findByTestId('step-0')
    await userEvent.click(screen.getByTestId('upload-submit'))
    expect(screen.getByTestId('error-message')).toHaveTextContent('Choose at least one image.')
    expect(fetchMock).toHaveBeenCalledTimes(1)
  })

  it('sends files, ops and copies, then selects the new job', async () => {
    const { fetchMock, onUploaded } = setup(() => jsonResponse({ status: 'sent', job_id: 'abc123ff-0000', tasks: 6 }, 202))
    await screen.findByTestId('step-0')
    await userEvent.upload(screen.getByTestId('file-input'), [png(), new File(['x'], 'dog.png', { type: 'image/png' })])
    const copies = screen.getByTestId('copies-input')
    await userEvent.clear(copies)
    await userEvent.type(copies, '3')
    await userEvent.click(screen.getByTestId('upload-submit'))

    await waitFor(() => expect(onUploaded).toHaveBeenCalledWith('abc123ff-0000'))
    const [path, init] = fetchMock.mock.calls[1]
    expect(path).toBe('/upload')
    const form = init!.body as FormData
    expect(form.getAll('file').map((f) => (f as File).name)).toEqual(['cat.png', 'dog.png'])
    expect(form.get('ops')).toBe('grayscale')
    expect(form.get('copies')).toBe('3')
    expect(screen.getByTestId('upload-success')).toHaveTextContent('Job abc123ff sent: 6 tasks.')
  })

  it('sends the bearer token once one is stored', async () => {
    localStorage.setItem('sd.token', 's3cret')
    const { fetchMock } = setup(() => jsonResponse({ status: 'sent', job_id: 'j', tasks: 1 }, 202))
    await chooseAndSubmit()
    await waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(2))
    const headers = new Headers(fetchMock.mock.calls[1][1]!.headers)
    expect(headers.get('Authorization')).toBe('Bearer s3cret')
  })
})
