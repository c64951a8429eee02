import { useAcademicText } from './messages'

interface PagerProps {
  page: number
  perPage: number
  total: number
  onPage: (page: number) => void
  testId: string
}

/** "Page x of y" with previous and next. */
export function Pager({ page, perPage, total, onPage, testId }: PagerProps) {
  const t = useAcademicText()
  const pages = Math.max(1, Math.ceil(total / perPage))
  return (
    <div className="acad-pager" data-testid={testId}>
      <button type="button" className="btn btn-small btn-secondary" disabled={page <= 1} onClick={() => onPage(page - 1)}>
        {t('previous')}
      </button>
      <span className="muted" data-testid={`${testId}-text`}>
        {t('pageOf', { page, pages, total })}
      </span>
      <button
        type="button"
        className="btn btn-small btn-secondary"
        disabled={page >= pages}
        onClick={() => onPage(page + 1)}
      >
        {t('next')}
      </button>
    </div>
  )
}
