// Who is signed in, for React. The tokens themselves live in the ApiClient's storage; this store
// mirrors what the UI needs and keeps the access token fresh in the background.

import { create } from 'zustand'
import { ApiClient, ApiError, REFRESH_MARGIN_MS, browserLock, type SignOutReason } from '../api/client'
import type { AuthResponse, User } from '../api/types'
import {
  TOKEN_STORAGE_KEY,
  accessTokenExpiry,
  localStorageTokens,
  memoryTokens,
  refreshMargin,
  tokenSubject,
  type Tokens,
} from '../auth/tokens'

export type SessionStatus = 'checking' | 'signed_in' | 'signed_out' | 'unreachable'

interface SessionState {
  status: SessionStatus
  user: User | null
  /** The current access token; WebSockets read it when they (re)connect. */
  accessToken: string | null
  /** Why the last session ended without the user asking, shown on the sign-in page. */
  endedReason: SignOutReason | null
}

export const useSession = create<SessionState>(() => ({
  status: 'checking',
  user: null,
  accessToken: null,
  endedReason: null,
}))

function browserStorage(): Storage | null {
  try {
    return typeof localStorage !== 'undefined' ? localStorage : null
  } catch {
    return null // storage disabled: the session lasts as long as the tab
  }
}

const storage = browserStorage()

export const api = new ApiClient({
  storage: storage ? localStorageTokens(storage) : memoryTokens(),
  lock: browserLock(),
  onTokensChanged: (tokens) => {
    useSession.setState({ accessToken: tokens?.accessToken ?? null })
    scheduleRefresh(tokens)
  },
  onSessionEnded: (reason) => {
    useSession.setState({ status: 'signed_out', user: null, accessToken: null, endedReason: reason })
  },
})

let refreshTimer: ReturnType<typeof setTimeout> | null = null

/** Refreshes shortly before the access token expires, so an idle tab's sockets can always reconnect. */
function scheduleRefresh(tokens: Tokens | null): void {
  if (refreshTimer !== null) clearTimeout(refreshTimer)
  refreshTimer = null
  if (tokens === null) return
  const expiry = accessTokenExpiry(tokens.accessToken)
  if (expiry === null) return
  const delay = Math.max(1_000, expiry - Date.now() - refreshMargin(tokens.accessToken, REFRESH_MARGIN_MS))
  refreshTimer = setTimeout(() => {
    api.refresh(tokens.accessToken).catch((error: unknown) => {
      // A revoked session has already signed the user out. Offline, rate limited or a server
      // error: try again in a while (as the server asks, if it says).
      const stillSignedIn = api.tokens() !== null
      if (!stillSignedIn) return
      const retryAfterMs = error instanceof ApiError && error.retryAfterSeconds !== null ? error.retryAfterSeconds * 1000 : 10_000
      refreshTimer = setTimeout(() => scheduleRefresh(api.tokens()), retryAfterMs)
    })
  }, delay)
}

/** Reads the stored session at start: valid tokens and `/api/auth/me` make the user signed in. */
export async function restoreSession(): Promise<void> {
  const tokens = api.tokens()
  if (tokens === null) {
    useSession.setState({ status: 'signed_out', user: null, accessToken: null })
    return
  }
  useSession.setState({ status: 'checking', accessToken: tokens.accessToken })
  scheduleRefresh(tokens)
  try {
    const user = await api.get<User>('/api/auth/me')
    useSession.setState({ status: 'signed_in', user, accessToken: api.tokens()?.accessToken ?? null })
  } catch (error) {
    if (error instanceof ApiError && error.isNetworkError) {
      useSession.setState({ status: 'unreachable' })
      return
    }
    if (error instanceof ApiError && error.status === 401) {
      api.clearTokens('signed_out')
      useSession.setState({ status: 'signed_out', user: null, accessToken: null, endedReason: 'session_expired' })
      return
    }
    useSession.setState({ status: 'unreachable' })
  }
}

export async function signIn(email: string, password: string): Promise<User> {
  const response = await api.post<AuthResponse>('/api/auth/login', { email, password }, false)
  return completeSignIn(response)
}

export async function register(username: string, email: string, password: string): Promise<User> {
  const response = await api.post<AuthResponse>('/api/auth/register', { username, email, password }, false)
  return completeSignIn(response)
}

function completeSignIn(response: AuthResponse): User {
  const tokens = api.adoptTokens(response)
  useSession.setState({ status: 'signed_in', user: response.user, accessToken: tokens.accessToken, endedReason: null })
  return response.user
}

export async function signOut(): Promise<void> {
  const tokens = api.tokens()
  if (tokens !== null) {
    // Revoke on the server; a failure (offline) still signs out locally.
    await api.post('/api/auth/logout', { refresh_token: tokens.refreshToken }, false).catch(() => undefined)
  }
  api.clearTokens('signed_out')
  useSession.setState({ status: 'signed_out', user: null, accessToken: null, endedReason: null })
}

/** Another tab signed in, refreshed or signed out: follow it. */
export function followOtherTabs(): () => void {
  const onStorage = (event: StorageEvent) => {
    if (event.key !== TOKEN_STORAGE_KEY) return
    const tokens = api.tokens()
    if (tokens === null) {
      useSession.setState({ status: 'signed_out', user: null, accessToken: null })
      scheduleRefresh(null)
      return
    }
    // Another user signed in from another tab: this tab follows, as that user.
    const current = useSession.getState().user
    if (current !== null && tokenSubject(tokens.accessToken) !== current.id) {
      useSession.setState({ status: 'checking', user: null, accessToken: null })
      void restoreSession()
      return
    }
    useSession.setState({ accessToken: tokens.accessToken })
    scheduleRefresh(tokens)
    if (useSession.getState().status !== 'signed_in') void restoreSession()
  }
  // A laptop waking up: timers ran late, so check the token at once.
  const onWake = () => {
    if (useSession.getState().status === 'signed_in') void api.freshAccessToken()
    if (useSession.getState().status === 'unreachable') void restoreSession()
  }
  window.addEventListener('storage', onStorage)
  window.addEventListener('online', onWake)
  document.addEventListener('visibilitychange', onWake)
  return () => {
    window.removeEventListener('storage', onStorage)
    window.removeEventListener('online', onWake)
    document.removeEventListener('visibilitychange', onWake)
  }
}
