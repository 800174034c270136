import { Link } from 'react-router'

export function NotFoundPage() {
  return (
    <main className="flex h-full flex-col items-center justify-center gap-3 text-center">
      <h1 className="text-lg font-semibold">Page not found</h1>
      <p className="text-sm text-muted">This address does not lead anywhere in CodeSync.</p>
      <Link to="/" className="text-sm text-accent hover:underline">
        Back to your rooms
      </Link>
    </main>
  )
}
