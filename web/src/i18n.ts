/** Spanish and English texts: a dictionary per language, a context and a `useI18n()` hook. */
import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react'

export type Lang = 'es' | 'en'
export const LANGS: Lang[] = ['es', 'en']
const LANG_KEY = 'sd.lang'

const en = {
  appSubtitle: 'Distributed image processing',
  live: 'Live',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  disconnected: 'Disconnected from the coordinator — reconnecting…',
  language: 'Language',
  cluster: 'Cluster',
  queue: 'Queue',
  queueHint: '{running} running',
  tps: 'Tasks / s',
  tpsChart: 'Tasks per second, last {min} minutes',
  workersAlive: 'Workers alive',
  workersHint: '{busy} busy',
  done: 'Done',
  failed: 'Failed',
  nodes: 'Nodes',
  noNodes: 'No workers yet. Start one with',
  status_free: 'free',
  status_busy: 'busy',
  status_offline: 'offline',
  status_paused: 'paused',
  status_draining: 'draining',
  nodeSearch: 'Search nodes by name',
  nodeFilter: 'Show',
  nodeFilterAll: 'all states',
  nodeSort: 'Sort by',
  nodeSortName: 'name',
  nodeSortStatus: 'state',
  nodeSortCpu: 'CPU',
  nodeGroupPaused: 'Paused ({n})',
  nodeGroupOffline: 'Offline ({n})',
  nodeNoMatch: 'No node matches.',
  nodeShown: '{shown} of {total}',
  coordinator: 'coordinator',
  coordinatorTitle: 'Runs on the coordinator’s machine',
  osTitle: 'Operating system',
  cpu: 'CPU',
  ram: 'RAM',
  net: 'Network',
  metricHistory: '{metric} over the last {min} minutes',
  currentTask: 'Task',
  idle: 'idle',
  lastSeen: 'last seen {n} s ago',
  consumers: 'consumers',
  prefetch: 'prefetch',
  tasksDone: 'done',
  tasksFailed: 'failed',
  upload: 'Process images',
  dropTitle: 'Drop images here',
  dropOr: 'or',
  browse: 'choose files',
  files: 'Images',
  removeFile: 'Remove {name}',
  clearFiles: 'Clear',
  pipeline: 'Pipeline',
  addStep: 'Add',
  opToAdd: 'Operation to add',
  emptyPipeline: 'No steps: add an operation.',
  argOf: '{arg} of step {n} ({op})',
  moveUp: 'Move step {n} up',
  moveDown: 'Move step {n} down',
  removeStep: 'Remove step {n} ({op})',
  opsString: 'Ops string',
  unknownOp: 'Unknown operation: {name}',
  opsUnavailable: 'Could not load the list of operations; type the ops string by hand.',
  copies: 'Copies',
  submit: 'Process',
  sending: 'Sending…',
  noFiles: 'Choose at least one image.',
  noOps: 'The pipeline is empty.',
  sent: 'Job {id} sent: {n} tasks.',
  networkError: 'Could not reach the coordinator.',
  jobs: 'Jobs',
  noJobs: 'No jobs yet. Upload an image to start.',
  progressText: '{done} done, {failed} failed of {total}',
  state_queued: 'queued',
  state_running: 'running',
  state_done: 'done',
  state_failed: 'failed',
  kind_image: 'images',
  kind_task: 'task',
  ago: '{t} ago',
  job: 'Job',
  closeJob: 'Close job',
  tasks: 'Tasks',
  worker: 'Worker',
  error: 'Error',
  output: 'Output',
  downloadZip: 'Download all (zip)',
  download: 'Download',
  before: 'Before',
  after: 'After',
  compare: 'Compare before and after of {name}',
  compareSlider: 'Before / after split',
  close: 'Close',
  loading: 'Loading…',
  jobNotFound: 'Job not found.',
  showMore: 'Show {n} more',
  pending: 'pending',
  tokenTitle: 'Access token',
  tokenHelp: 'This coordinator requires an API token.',
  token: 'Token',
  save: 'Save',
  state_cancelled: 'cancelled',
  chooseFolder: 'a folder',
  moreFiles: '+{n} more',
  uploadProgress: 'Upload',
  uploading: 'Uploading: {sent} of {total} images sent',
  notProcessed: 'Not processed ({n})',
  notAnImage: 'not an image',
  cancelJob: 'Cancel job',
  cancelledText: '{n} cancelled',
  showTasks: 'Show',
  filter_all: 'all',
  filter_done: 'done',
  filter_failed: 'failed',
  filter_queued: 'queued',
  filter_cancelled: 'cancelled',
  coordinatorVersion: 'Coordinator version',
  workerVersion: 'Version of this worker',
  versionUnknown: 'version ?',
  versionSkew: 'Runs {worker}, the coordinator {coordinator}: install the same release on both.',
  linkTitle: 'Round trip of its reports to the coordinator, and time since the last one',
  link: '↔ {ms} ms · {s} s ago',
  lastSeenMin: 'last seen {n} min ago',
  lastSeenH: 'last seen {n} h ago',
  rerun: 're-run: {reason}',
  rerunLost: 're-run: host {name} lost',
  rerunLostUnknown: 're-run: its host was lost',
  rerunStraggler: 're-run: {name} lagged',
  rerunTitle: 'Published again because the worker that held it was lost or far behind; the first result was kept',
}

export type MessageKey = keyof typeof en

const es: Record<MessageKey, string> = {
  appSubtitle: 'Procesamiento distribuido de imágenes',
  live: 'En vivo',
  connecting: 'Conectando…',
  reconnecting: 'Reconectando…',
  disconnected: 'Sin conexión con el coordinador — reconectando…',
  language: 'Idioma',
  cluster: 'Clúster',
  queue: 'Cola',
  queueHint: '{running} en curso',
  tps: 'Tareas / s',
  tpsChart: 'Tareas por segundo, últimos {min} minutos',
  workersAlive: 'Workers vivos',
  workersHint: '{busy} ocupados',
  done: 'Hechas',
  failed: 'Fallidas',
  nodes: 'Nodos',
  noNodes: 'Aún no hay workers. Arranca uno con',
  status_free: 'libre',
  status_busy: 'ocupado',
  status_offline: 'desconectado',
  status_paused: 'en pausa',
  status_draining: 'terminando',
  nodeSearch: 'Buscar nodos por nombre',
  nodeFilter: 'Mostrar',
  nodeFilterAll: 'todos los estados',
  nodeSort: 'Ordenar por',
  nodeSortName: 'nombre',
  nodeSortStatus: 'estado',
  nodeSortCpu: 'CPU',
  nodeGroupPaused: 'En pausa ({n})',
  nodeGroupOffline: 'Desconectados ({n})',
  nodeNoMatch: 'Ningún nodo coincide.',
  nodeShown: '{shown} de {total}',
  coordinator: 'coordinador',
  coordinatorTitle: 'Corre en la máquina del coordinador',
  osTitle: 'Sistema operativo',
  cpu: 'CPU',
  ram: 'RAM',
  net: 'Red',
  metricHistory: '{metric} en los últimos {min} minutos',
  currentTask: 'Tarea',
  idle: 'ninguna',
  lastSeen: 'visto hace {n} s',
  consumers: 'consumidores',
  prefetch: 'prefetch',
  tasksDone: 'hechas',
  tasksFailed: 'fallidas',
  upload: 'Procesar imágenes',
  dropTitle: 'Suelta imágenes aquí',
  dropOr: 'o',
  browse: 'elige archivos',
  files: 'Imágenes',
  removeFile: 'Quitar {name}',
  clearFiles: 'Vaciar',
  pipeline: 'Pipeline',
  addStep: 'Añadir',
  opToAdd: 'Operación a añadir',
  emptyPipeline: 'Sin pasos: añade una operación.',
  argOf: '{arg} del paso {n} ({op})',
  moveUp: 'Subir el paso {n}',
  moveDown: 'Bajar el paso {n}',
  removeStep: 'Quitar el paso {n} ({op})',
  opsString: 'Cadena de ops',
  unknownOp: 'Operación desconocida: {name}',
  opsUnavailable: 'No se pudo cargar la lista de operaciones; escribe la cadena de ops a mano.',
  copies: 'Copias',
  submit: 'Procesar',
  sending: 'Enviando…',
  noFiles: 'Elige al menos una imagen.',
  noOps: 'El pipeline está vacío.',
  sent: 'Trabajo {id} enviado: {n} tareas.',
  networkError: 'No se pudo contactar con el coordinador.',
  jobs: 'Trabajos',
  noJobs: 'Aún no hay trabajos. Sube una imagen para empezar.',
  progressText: '{done} hechas, {failed} fallidas de {total}',
  state_queued: 'en cola',
  state_running: 'en curso',
  state_done: 'hecho',
  state_failed: 'fallido',
  kind_image: 'imágenes',
  kind_task: 'tarea',
  ago: 'hace {t}',
  job: 'Trabajo',
  closeJob: 'Cerrar trabajo',
  tasks: 'Tareas',
  worker: 'Worker',
  error: 'Error',
  output: 'Salida',
  downloadZip: 'Descargar todo (zip)',
  download: 'Descargar',
  before: 'Antes',
  after: 'Después',
  compare: 'Comparar antes y después de {name}',
  compareSlider: 'División antes / después',
  close: 'Cerrar',
  loading: 'Cargando…',
  jobNotFound: 'Trabajo no encontrado.',
  showMore: 'Mostrar {n} más',
  pending: 'pendiente',
  tokenTitle: 'Token de acceso',
  tokenHelp: 'Este coordinador exige un token de API.',
  token: 'Token',
  save: 'Guardar',
  state_cancelled: 'cancelado',
  chooseFolder: 'una carpeta',
  moreFiles: '+{n} más',
  uploadProgress: 'Subida',
  uploading: 'Subiendo: {sent} de {total} imágenes enviadas',
  notProcessed: 'No procesadas ({n})',
  notAnImage: 'no es una imagen',
  cancelJob: 'Cancelar trabajo',
  cancelledText: '{n} canceladas',
  showTasks: 'Mostrar',
  filter_all: 'todas',
  filter_done: 'hechas',
  filter_failed: 'fallidas',
  filter_queued: 'en cola',
  filter_cancelled: 'canceladas',
  coordinatorVersion: 'Versión del coordinador',
  workerVersion: 'Versión de este worker',
  versionUnknown: 'versión ?',
  versionSkew: 'Ejecuta {worker} y el coordinador {coordinator}: instala la misma versión en ambos.',
  linkTitle: 'Ida y vuelta de sus informes al coordinador, y tiempo desde el último',
  link: '↔ {ms} ms · hace {s} s',
  lastSeenMin: 'visto hace {n} min',
  lastSeenH: 'visto hace {n} h',
  rerun: 're-ejecutada: {reason}',
  rerunLost: 're-ejecutada: se perdió el nodo {name}',
  rerunLostUnknown: 're-ejecutada: se perdió su nodo',
  rerunStraggler: 're-ejecutada: {name} iba atrasado',
  rerunTitle: 'Publicada de nuevo porque el worker que la tenía se perdió o iba muy atrasado; se guardó el primer resultado',
}

export const MESSAGES: Record<Lang, Record<MessageKey, string>> = { en, es }

export type Translate = (key: MessageKey, params?: Record<string, string | number>) => string

export function translate(lang: Lang, key: MessageKey, params?: Record<string, string | number>): string {
  const text = MESSAGES[lang][key]
  if (!params) return text
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole))
}

/** The stored choice, else the browser's language (Spanish for any `es-*`), else English. */
export function initialLang(): Lang {
  try {
    const stored = localStorage.getItem(LANG_KEY)
    if (stored === 'es' || stored === 'en') return stored
  } catch {
    // No storage: fall through to the browser's language.
  }
  const languages = typeof navigator === 'undefined' ? [] : [...(navigator.languages ?? []), navigator.language]
  const first = languages.find(Boolean)?.toLowerCase() ?? ''
  return first.startsWith('es') ? 'es' : 'en'
}

interface I18n {
  lang: Lang
  setLang: (lang: Lang) => void
  t: Translate
}

const I18nContext = createContext<I18n>({
  lang: 'en',
  setLang: () => undefined,
  t: (key, params) => translate('en', key, params),
})

export function I18nProvider({ children, lang: forced }: { children: ReactNode; lang?: Lang }) {
  const [lang, setLangState] = useState<Lang>(() => forced ?? initialLang())
  const setLang = useCallback((next: Lang) => {
    setLangState(next)
    try {
      localStorage.setItem(LANG_KEY, next)
    } catch {
      // Not remembered, still switched.
    }
  }, [])
  useEffect(() => {
    document.documentElement.lang = lang
  }, [lang])
  const value = useMemo<I18n>(
    () => ({ lang, setLang, t: (key, params) => translate(lang, key, params) }),
    [lang, setLang],
  )
  return createElement(I18nContext.Provider, { value }, children)
}

export const useI18n = (): I18n => useContext(I18nContext)
