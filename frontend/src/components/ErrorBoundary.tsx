import { Component, type ErrorInfo, type ReactNode } from 'react'
import { Button } from './ui'

interface State {
  error: Error | null
}

/**
 * Keeps one broken page (a chunk that no longer exists after an upgrade, a bug) from blanking
 * the whole app: the page says so and offers a reload.
 */
export class PageErrorBoundary extends Component<{ children: ReactNode }, State> {
  state: State = { error: null }

  static getDerivedStateFromError(error: Error): State {
    return { error }
  }

  componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error('a page failed to render', error, info.componentStack)
  }

  render() {
    if (this.state.error === null) return this.props.children
    const chunk = /dynamically imported module|Loading chunk|Failed to fetch/i.test(this.state.error.message)
    return (
      <div role="alert" className="flex h-full flex-col items-center justify-center gap-3 px-6 text-center">
        <p className="text-sm text-fg">
          {chunk ? 'This page could not be loaded: CodeSync may have been updated, or the connection dropped.' : 'This page failed.'}
        </p>
        <p className="text-sm text-muted">Reloading usually fixes it.</p>
        <Button variant="primary" onClick={() => window.location.reload()}>
          Reload
        </Button>
      </div>
    )
  }
}
