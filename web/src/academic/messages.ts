/** Texts of the "Académico" section, in Spanish and English, following the dashboard's language. */
import { useCallback } from 'react'
import { useI18n, type Lang } from '../i18n'

const en = {
  tabCluster: 'Cluster',
  tabAcademic: 'Academic',
  sections: 'Sections',
  profesores: 'Teachers',
  grupos: 'Groups',
  search: 'Search',
  searchProfesores: 'Name or email',
  searchGrupos: 'Key or subject',
  periodoFilter: 'Term',
  allTerms: 'all terms',
  newProfesor: 'New teacher',
  newGrupo: 'New group',
  editProfesor: 'Edit teacher',
  editGrupo: 'Edit group',
  edit: 'Edit',
  delete: 'Delete',
  save: 'Save',
  cancel: 'Cancel',
  saving: 'Saving…',
  nombre: 'First name',
  apellidos: 'Surnames',
  email: 'Email',
  departamento: 'Department',
  activo: 'Active',
  inactivo: 'inactive',
  clave: 'Key',
  materia: 'Subject',
  periodo: 'Term',
  cupo: 'Capacity',
  horario: 'Schedule',
  profesor: 'Teacher',
  nobody: '— nobody —',
  gruposCount: 'Groups',
  showGrupos: 'Groups of {name}',
  gruposOf: 'Groups of {name}',
  clearFilter: 'Show all groups',
  empty: 'Nothing here yet.',
  noMatch: 'Nothing matches the search.',
  pageOf: 'Page {page} of {pages} · {total} in total',
  previous: 'Previous',
  next: 'Next',
  confirmTitle: 'Delete?',
  confirmProfesor: 'Delete the teacher {name}? This cannot be undone.',
  confirmGrupo: 'Delete the group {name}? This cannot be undone.',
  teaches: '{name} still teaches {n} group(s). Delete anyway and leave those groups without a teacher?',
  deleteAndUnassign: 'Delete and unassign',
  stale: 'Someone else changed this record meanwhile. Reload it to see their change, then edit again.',
  reload: 'Reload',
  importCsv: 'Import CSV',
  exportCsv: 'Export CSV',
  importResult: 'Import: {created} created, {updated} updated, {unchanged} unchanged, {refused} refused',
  row: 'Row {row}',
  action_created: 'created',
  action_updated: 'updated',
  action_unchanged: 'unchanged',
  action_refused: 'refused',
  liveChange: 'Updated live',
  networkError: 'Could not reach the coordinator.',
  required: 'Required',
  close: 'Close',
  findProfesor: 'Find a teacher',
}

export type AcademicKey = keyof typeof en

const es: Record<AcademicKey, string> = {
  tabCluster: 'Clúster',
  tabAcademic: 'Académico',
  sections: 'Secciones',
  profesores: 'Profesores',
  grupos: 'Grupos',
  search: 'Buscar',
  searchProfesores: 'Nombre o correo',
  searchGrupos: 'Clave o materia',
  periodoFilter: 'Periodo',
  allTerms: 'todos los periodos',
  newProfesor: 'Nuevo profesor',
  newGrupo: 'Nuevo grupo',
  editProfesor: 'Editar profesor',
  editGrupo: 'Editar grupo',
  edit: 'Editar',
  delete: 'Eliminar',
  save: 'Guardar',
  cancel: 'Cancelar',
  saving: 'Guardando…',
  nombre: 'Nombre',
  apellidos: 'Apellidos',
  email: 'Correo',
  departamento: 'Departamento',
  activo: 'Activo',
  inactivo: 'inactivo',
  clave: 'Clave',
  materia: 'Materia',
  periodo: 'Periodo',
  cupo: 'Cupo',
  horario: 'Horario',
  profesor: 'Profesor',
  nobody: '— sin asignar —',
  gruposCount: 'Grupos',
  showGrupos: 'Grupos de {name}',
  gruposOf: 'Grupos de {name}',
  clearFilter: 'Ver todos los grupos',
  empty: 'Aún no hay nada.',
  noMatch: 'Nada coincide con la búsqueda.',
  pageOf: 'Página {page} de {pages} · {total} en total',
  previous: 'Anterior',
  next: 'Siguiente',
  confirmTitle: '¿Eliminar?',
  confirmProfesor: '¿Eliminar al profesor {name}? No se puede deshacer.',
  confirmGrupo: '¿Eliminar el grupo {name}? No se puede deshacer.',
  teaches: '{name} aún imparte {n} grupo(s). ¿Eliminar de todos modos y dejar esos grupos sin profesor?',
  deleteAndUnassign: 'Eliminar y desasignar',
  stale: 'Alguien más cambió este registro mientras tanto. Recárgalo para ver su cambio y vuelve a editar.',
  reload: 'Recargar',
  importCsv: 'Importar CSV',
  exportCsv: 'Exportar CSV',
  importResult: 'Importación: {created} creados, {updated} actualizados, {unchanged} sin cambios, {refused} rechazados',
  row: 'Fila {row}',
  action_created: 'creado',
  action_updated: 'actualizado',
  action_unchanged: 'sin cambios',
  action_refused: 'rechazado',
  liveChange: 'Actualizado en vivo',
  networkError: 'No se pudo contactar con el coordinador.',
  required: 'Obligatorio',
  close: 'Cerrar',
  findProfesor: 'Buscar profesor',
}

export const ACADEMIC_MESSAGES: Record<Lang, Record<AcademicKey, string>> = { en, es }

export type AcademicTranslate = (key: AcademicKey, params?: Record<string, string | number>) => string

/** `t` for this section's texts, in the dashboard's current language. */
export function useAcademicText(): AcademicTranslate {
  const { lang } = useI18n()
  return useCallback(
    (key, params) => {
      const text = ACADEMIC_MESSAGES[lang][key]
      if (!params) return text
      return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole))
    },
    [lang],
  )
}

/** The service's reasons (English) for the fields it refuses, said in Spanish; anything not
 * listed stays as the service wrote it. */
const REASONS_ES: [RegExp, string][] = [
  [/^Field required$/, 'Obligatorio'],
  [/^String should have at least 1 character$/, 'Obligatorio'],
  [/^String should have at most (\d+) characters$/, 'Como mucho $1 caracteres'],
  [/^not an email address.*$/, 'No es un correo (nombre@dominio.mx)'],
  [/^'(.*)' is already in use$/, '«$1» ya está en uso'],
  [/^Input should be greater than or equal to (\d+)$/, 'Debe ser al menos $1'],
  [/^Input should be less than or equal to (\d+)$/, 'Debe ser como mucho $1'],
  [/^Input should be a valid (integer|number).*$/, 'Debe ser un número entero'],
  [/^Input should be a valid boolean.*$/, 'Debe ser sí o no'],
  [/^no profesor with id (\d+)$/, 'No existe el profesor $1'],
  [/^no profesor with email '(.*)'$/, 'No hay ningún profesor con el correo «$1»'],
  [/^must not contain control characters.*$/, 'Sin tabuladores ni saltos de línea'],
  [/^letters, digits.*$/, "Letras, dígitos, '-', '.' o '_', empezando por letra o dígito"],
  [/^may not be null$/, 'Obligatorio'],
]

export function localizeReason(lang: Lang, reason: string): string {
  if (lang !== 'es') return reason
  for (const [pattern, text] of REASONS_ES) if (pattern.test(reason)) return reason.replace(pattern, text)
  return reason
}
