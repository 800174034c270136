import { Suspense, lazy, useEffect, useRef, type ReactNode } from 'react'
import { QueryClientProvider } from '@tanstack/react-query'
import { BrowserRouter, Navigate, Route, Routes, useLocation } from 'react-router'
import { createQueryClient } from './api/queries'
import { hideAllPools, setAccessTokenEverywhere, warnBeforeUnloadWithUnsavedEdits } from './collab/sessionPool'
import { api, followOtherTabs, restoreSession, useSession } from './state/session'
import { AuthPage } from './pages/AuthPage'
import { RoomsPage } from './pages/RoomsPage'
import { JoinPage } from './pages/JoinPage'
import { NotFoundPage } from './pages/NotFoundPage'
import { Button, Spinner } from './components/ui'
import { PageErrorBoundary } from './components/ErrorBoundary'
import { NotificationsPage } from './pages/NotificationsPage'
import { followNotifications } from './api/notifications'
import { followLive, refreshNotifications } from './state/notifications'

const queryClient = createQueryClient()

// The room page carries Monaco (megabytes): it loads when a room opens, not with the sign-in page.
const loadRoomPage = () => import('./pages/RoomPage')
const RoomPage = lazy(() => loadRoomPage().then((module) => ({ default: module.RoomPage })))
// The dashboard carries the charting library: it loads for administrators who open it.
const AdminPage = lazy(() => import('./pages/AdminPage').then((module) => ({ default: module.AdminPage })))
// Opening a room's address directly (a reload, a shared link): fetch the editor while the
// session is checked, not after.
if (typeof window !== 'undefined' && window.location.pathname.startsWith('/rooms/')) loadRoomPage().catch(() => undefined)

function PageLoading({ label }: { label: string }) {
  return (
    <div className="flex h-full items-center justify-center">
      <Spinner label={label} />
    </div>
  )
}

export function App() {
  useEffect(() => {
    void restoreSession()
    const stopFollowing = followOtherTabs()
    const stopWarning = warnBeforeUnloadWithUnsavedEdits()
    // Every refresh reaches the open file sessions: their next reconnection uses the new token.
    const stopTokens = useSession.subscribe((state, previous) => {
      if (state.accessToken && state.accessToken !== previous.accessToken) setAccessTokenEverywhere(state.accessToken)
      if (state.status === 'signed_out' && previous.status !== 'signed_out') hideAllPools()
    })
    return () => {
      stopFollowing()
      stopWarning()
      stopTokens()
    }
  }, [])
  // After a sign-out or a switch of user, nothing cached for the previous user may show.
  const userId = useSession((state) => state.user?.id ?? null)
  // One live notification stream per tab, for whoever is signed in.
  useEffect(() => {
    if (userId === null) return
    return followLive({ follow: followNotifications, refresh: (signal) => refreshNotifications(signal) })
  }, [userId])
  const previousUserId = useRef<string | null>(null)
  useEffect(() => {
    if (previousUserId.current !== null && previousUserId.current !== userId) queryClient.clear()
    previousUserId.current = userId
  }, [userId])

  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <AppRoutes />
      </BrowserRouter>
    </QueryClientProvider>
  )
}

function AppRoutes() {
  // Keyed by page, so leaving a page that failed clears the failure.
  const { pathname } = useLocation()
  return (
    <PageErrorBoundary key={pathname}>
      <Routes>
        <Route path="/login" element={<AuthPage mode="login" />} />
        <Route path="/register" element={<AuthPage mode="register" />} />
        <Route
          path="/"
          element={
            <RequireSession>
              <RoomsPage />
            </RequireSession>
          }
        />
        <Route
          path="/join/:inviteCode"
          element={
            <RequireSession>
              <JoinPage />
            </RequireSession>
          }
        />
        <Route
          path="/rooms/:roomId"
          element={
            <RequireSession>
              <Suspense fallback={<PageLoading label="Loading the editor…" />}>
                <RoomPage />
              </Suspense>
            </RequireSession>
          }
        />
        <Route
          path="/notifications"
          element={
            <RequireSession>
              <NotificationsPage />
            </RequireSession>
          }
        />
        <Route
          path="/admin"
          element={
            <RequireSession>
              <Suspense fallback={<PageLoading label="Loading the dashboard…" />}>
                <AdminPage />
              </Suspense>
            </RequireSession>
          }
        />
        <Route path="*" element={<NotFoundPage />} />
      </Routes>
    </PageErrorBoundary>
  )
}

/** Pages behind sign-in: signed-out visitors go to the sign-in page and come back afterwards. */
function RequireSession({ children }: { children: ReactNode }) {
  const status = useSession((state) => state.status)
  const location = useLocation()
  // With stored tokens the page starts at once; the session check runs alongside its requests,
  // which refresh the token if they need to.
  if (status === 'checking' && api.tokens() === null) return <PageLoading label="Loading your session…" />
  if (status === 'unreachable') {
    return (
      <div role="alert" className="flex h-full flex-col items-center justify-center gap-3 text-center">
        <p className="text-sm text-fg">The CodeSync server cannot be reached.</p>
        <p className="text-sm text-muted">Check your connection; your session is kept.</p>
        <Button onClick={() => void restoreSession()}>Try again</Button>
      </div>
    )
  }
  if (status === 'signed_out') {
    const next = location.pathname + location.search
    return <Navigate to={`/login?next=${encodeURIComponent(next)}`} replace />
  }
  return <>{children}</>
}
