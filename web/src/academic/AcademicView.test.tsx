import { render, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { I18nProvider } from '../i18n'
import { installEventSource, installFetch, jsonResponse, MockEventSource } from '../test/fakes'
import { AcademicView } from './AcademicView'
import { ACADEMIC_MESSAGES } from './messages'

const ana = {
  id: 1,
  nombre: 'Ana',
  apellidos: 'García',
  email: 'ana@escuela.mx',
  departamento: 'Sistemas',
  activo: true,
  grupos: 0,
  version: 3,
  created_at: '2025-01-01T00:00:00Z',
  updated_at: '2025-01-01T00:00:00Z',
}
const page = (items: unknown[]) => ({ items, total: items.length, page: 1, per_page: 10 })

function setup(route: (path: string, init?: RequestInit) => Response) {
  installEventSource()
  const fetchMock = installFetch(route)
  render(
    <I18nProvider lang="es">
      <AcademicView />
    </I18nProvider>,
  )
  return fetchMock
}

describe('AcademicView', () => {
  it('shows the reason for each refused field next to it', async () => {
    setup((path, init) => {
      if (init?.method === 'POST') {
        return jsonResponse(
          { detail: 'email: not an email address', errors: [{ field: 'email', reason: 'not an email address' }] },
          422,
        )
      }
      return jsonResponse(page(path.startsWith('profesores') ? [ana] : []))
    })
    await userEvent.click(await screen.findByTestId('new-profesor'))
    await userEvent.type(screen.getByTestId('input-email'), 'mal')
    await userEvent.click(screen.getByTestId('profesor-form-save'))
    expect(await screen.findByTestId('error-email')).toHaveTextContent('No es un correo (nombre@dominio.mx)')
    expect(screen.getByTestId('input-email')).toHaveAttribute('aria-invalid', 'true')
    expect(screen.queryByTestId('error-nombre')).toBeNull()
  })

  it('sends the version read as If-Match and says so when someone changed it meanwhile', async () => {
    const fetchMock = setup((path, init) => {
      if (init?.method === 'PUT') return jsonResponse({ detail: 'changed', errors: [] }, 412)
      return jsonResponse(page(path.startsWith('profesores') ? [ana] : []))
    })
    const row = await screen.findByTestId('profesor-ana@escuela.mx')
    await userEvent.click(within(row).getByTestId('edit'))
    await userEvent.click(screen.getByTestId('profesor-form-save'))
    expect(await screen.findByTestId('stale-message')).toHaveTextContent('Alguien más cambió este registro')
    const put = fetchMock.mock.calls.find(([, init]) => init?.method === 'PUT')
    expect(new Headers(put?.[1]?.headers).get('If-Match')).toBe('"3"')
  })

  it('reloads the tables once for a burst of published changes', async () => {
    const fetchMock = setup((path) => jsonResponse(page(path.startsWith('profesores') ? [ana] : [])))
    await screen.findByTestId('profesor-ana@escuela.mx')
    await waitFor(() => expect(fetchMock.mock.calls.length).toBe(2))
    const source = MockEventSource.latest as unknown as { listeners: Map<string, Set<(e: MessageEvent) => void>> }
    for (let id = 1; id <= 50; id++) {
      const change = new MessageEvent('change', { data: JSON.stringify({ type: 'grupo.created', entity: 'grupo', id }) })
      source.listeners.get('change')?.forEach((listener) => listener(change))
    }
    await waitFor(() => expect(fetchMock.mock.calls.length).toBe(4))
    await new Promise((resolve) => setTimeout(resolve, 400))
    expect(fetchMock.mock.calls.length).toBe(4)
  })

  it('has every text in both languages', () => {
    expect(Object.keys(ACADEMIC_MESSAGES.es).sort()).toEqual(Object.keys(ACADEMIC_MESSAGES.en).sort())
    for (const text of Object.values(ACADEMIC_MESSAGES.es)) expect(text.trim()).not.toBe('')
  })
})
