/** An error for the user, e.g. the API's `detail`; several lines stay several lines. */
export function ErrorMessage({ message }: { message: string }) {
  return (
    <div className="message message-error" role="alert" data-testid="error-message">
      {message}
    </div>
  )
}
