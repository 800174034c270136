// The REST client: one place that attaches the access token, refreshes it silently, and turns
// every failure into an `ApiError` with the server's code and sentence.

import type { TokenPair } from './types'
import { expiresWithin, type TokenStorage, type Tokens } from '../auth/tokens'

/** A refused or failed request: the server's error code and message, or a network failure. */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly retryAfterSeconds: number | null

  constructor(status: number, code: string, message: string, retryAfterSeconds: number | null = null) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.retryAfterSeconds = retryAfterSeconds
  }

  /** The request never got an answer (offline, server down, connection reset). */
  get isNetworkError(): boolean {
    return this.status === 0
  }
}

/** Why the client gave up the session: the user must sign in again. */
export type SignOutReason = 'session_expired' | 'refresh_token_reused' | 'signed_out'

/** Runs `task` while holding a lock shared by every tab, so only one tab rotates the refresh token. */
export type LockRunner = <T>(name: string, task: () => Promise<T>) => Promise<T>

export interface ApiClientOptions {
  storage: TokenStorage
  fetch?: typeof fetch
  /** Prefix of every path; empty for the page's own origin. */
  baseUrl?: string
  lock?: LockRunner
  now?: () => number
  /** Called whenever the stored tokens change (sign-in, refresh, sign-out). */
  onTokensChanged?: (tokens: Tokens | null) => void
  /** Called when the session ended without the user asking (expired, revoked). */
  onSessionEnded?: (reason: SignOutReason) => void
}

/** Refresh this long before the access token expires, so no request is sent with a dying token. */
export const REFRESH_MARGIN_MS = 60_000

const REFRESH_LOCK = 'codesync-token-refresh'

export const runWithoutLock: LockRunner = (_name, task) => task()

/** The Web Locks API where the browser has it; without it, tabs may race (and reuse detection may sign them out). */
export function browserLock(): LockRunner {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined
  if (!locks) return runWithoutLock
  return <T>(name: string, task: () => Promise<T>) => locks.request(name, task) as Promise<T>
}

interface RequestOptions {
  body?: unknown
  /** Send the access token (default true). */
  authenticated?: boolean
  signal?: AbortSignal
}

export class ApiClient {
  private readonly storage: TokenStorage
  private readonly fetchImpl: typeof fetch
  private readonly baseUrl: string
  private readonly lock: LockRunner
  private readonly now: () => number
  private readonly onTokensChanged: (tokens: Tokens | null) => void
  private readonly onSessionEnded: (reason: SignOutReason) => void
  private refreshInFlight: Promise<Tokens> | null = null

  constructor(options: ApiClientOptions) {
    this.storage = options.storage
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init))
    this.baseUrl = options.baseUrl ?? ''
    this.lock = options.lock ?? runWithoutLock
    this.now = options.now ?? Date.now
    this.onTokensChanged = options.onTokensChanged ?? (() => {})
    this.onSessionEnded = options.onSessionEnded ?? (() => {})
  }

  tokens(): Tokens | null {
    return this.storage.load()
  }

  /** Stores the tokens of a fresh sign-in or registration. */
  adoptTokens(pair: TokenPair): Tokens {
    const tokens = { accessToken: pair.access_token, refreshToken: pair.refresh_token }
    this.storage.save(tokens)
    this.onTokensChanged(tokens)
    return tokens
  }

  /** Forgets the session locally (the caller revokes it on the server first, when it can). */
  clearTokens(reason: SignOutReason): void {
    this.storage.save(null)
    this.onTokensChanged(null)
    if (reason !== 'signed_out') this.onSessionEnded(reason)
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>('GET', path, { signal })
  }

  post<T>(path: string, body?: unknown, authenticated = true): Promise<T> {
    return this.request<T>('POST', path, { body, authenticated })
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body })
  }

  delete<T = void>(path: string): Promise<T> {
    return this.request<T>('DELETE', path, {})
  }

  /**
   * An access token valid for at least `REFRESH_MARGIN_MS`, refreshing first when needed; `null`
   * when signed out. WebSockets call this before they connect.
   */
  async freshAccessToken(): Promise<string | null> {
    const tokens = this.storage.load()
    if (tokens === null) return null
    if (!expiresWithin(tokens.accessToken, REFRESH_MARGIN_MS, this.now())) return tokens.accessToken
    try {
      return (await this.refresh(tokens.accessToken)).accessToken
    } catch {
      // Signed out (the refresh token was refused): no token. Offline, rate limited or a server
      // error: the old token; the caller's request fails on its own, and a later refresh works.
      return this.storage.load()?.accessToken ?? null
    }
  }

  /**
   * Rotates the refresh token. Calls made at once share one request; across tabs the lock makes
   * the others wait, and they then adopt the tokens the first tab stored instead of presenting
   * the used-up refresh token (which the server would treat as theft and revoke the session).
   */
  refresh(staleAccessToken?: string): Promise<Tokens> {
    if (this.refreshInFlight !== null) return this.refreshInFlight
    const attempt = this.lock(REFRESH_LOCK, () => this.refreshHoldingLock(staleAccessToken))
    this.refreshInFlight = attempt.finally(() => {
      this.refreshInFlight = null
    })
    return this.refreshInFlight
  }

  private async refreshHoldingLock(staleAccessToken: string | undefined): Promise<Tokens> {
    const current = this.storage.load()
    if (current === null) throw new ApiError(401, 'authentication_required', 'you are signed out')
    const rotatedElsewhere = staleAccessToken !== undefined && current.accessToken !== staleAccessToken
    if (rotatedElsewhere && !expiresWithin(current.accessToken, REFRESH_MARGIN_MS, this.now())) {
      this.onTokensChanged(current)
      return current
    }
    let pair: TokenPair
    try {
      pair = await this.send<TokenPair>('POST', '/api/auth/refresh', { refresh_token: current.refreshToken }, null)
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 400 || error.status === 422)) {
        this.clearTokens(error.code === 'refresh_token_reused' ? 'refresh_token_reused' : 'session_expired')
      }
      throw error
    }
    return this.adoptTokens(pair)
  }

  async request<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const authenticated = options.authenticated ?? true
    if (!authenticated) return this.send<T>(method, path, options.body, null, options.signal)
    const accessToken = await this.freshAccessToken()
    try {
      return await this.send<T>(method, path, options.body, accessToken, options.signal)
    } catch (error) {
      // The token may have expired in flight, or been rotated by another tab: refresh once, retry once.
      const expired =
        error instanceof ApiError && error.status === 401 && (error.code === 'token_expired' || error.code === 'invalid_token')
      if (!expired || accessToken === null) throw error
      const tokens = await this.refresh(accessToken)
      return this.send<T>(method, path, options.body, tokens.accessToken, options.signal)
    }
  }

  /**
   * POSTs `body` (or GETs, without one) and hands back the response of a streaming endpoint once it has started (2xx);
   * a refusal is thrown as an `ApiError`, after one refresh and retry for an expired token.
   */
  async openStream(path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    // Without a body, the stream is read with GET (notifications); with one, POSTed (runs, answers).
    const method = body === undefined ? 'GET' : 'POST'
    const attempt = async (accessToken: string | null) => {
      const headers: Record<string, string> = { Accept: 'text/event-stream' }
      if (body !== undefined) headers['Content-Type'] = 'application/json'
      if (accessToken !== null) headers.Authorization = `Bearer ${accessToken}`
      let response: Response
      try {
        const payload = body === undefined ? undefined : JSON.stringify(body)
        response = await this.fetchImpl(this.baseUrl + path, { method, headers, body: payload, signal })
      } catch (error) {
        if (signal?.aborted) throw error
        throw new ApiError(0, 'network_error', 'the server cannot be reached; check your connection')
      }
      if (response.ok) return response
      throw errorFromResponse(response, parseJson(await response.text()))
    }
    const accessToken = await this.freshAccessToken()
    try {
      return await attempt(accessToken)
    } catch (error) {
      const expired =
        error instanceof ApiError && error.status === 401 && (error.code === 'token_expired' || error.code === 'invalid_token')
      if (!expired || accessToken === null) throw error
      return attempt((await this.refresh(accessToken)).accessToken)
    }
  }

  /**
   * A request whose body or answer is not JSON (an archive up or down): the response as it came, whatever its status,
   * after one refresh and retry for an expired token.
   */
  async fetchRaw(method: string, path: string, body?: { data: BodyInit; contentType: string }, signal?: AbortSignal): Promise<Response> {
    const attempt = async (accessToken: string | null) => {
      const headers: Record<string, string> = {}
      if (body !== undefined) headers['Content-Type'] = body.contentType
      if (accessToken !== null) headers.Authorization = `Bearer ${accessToken}`
      try {
        return await this.fetchImpl(this.baseUrl + path, { method, headers, body: body?.data, signal })
      } catch (error) {
        if (signal?.aborted) throw error
        throw new ApiError(0, 'network_error', 'the server cannot be reached; check your connection')
      }
    }
    const accessToken = await this.freshAccessToken()
    const response = await attempt(accessToken)
    if (response.status !== 401 || accessToken === null) return response
    const error = errorFromResponse(response, parseJson(await response.clone().text()))
    if (error.code !== 'token_expired' && error.code !== 'invalid_token') return response
    return attempt((await this.refresh(accessToken)).accessToken)
  }

  private async send<T>(method: string, path: string, body: unknown, accessToken: string | null, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    if (accessToken !== null) headers.Authorization = `Bearer ${accessToken}`
    let response: Response
    try {
      response = await this.fetchImpl(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      })
    } catch (error) {
      if (signal?.aborted) throw error
      throw new ApiError(0, 'network_error', 'the server cannot be reached; check your connection')
    }
    if (response.status === 204) return undefined as T
    const text = await response.text()
    const parsed = parseJson(text)
    if (response.ok) return parsed as T
    throw errorFromResponse(response, parsed)
  }
}

function parseJson(text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** The server's `{"error": {code, message}}`, or a sentence made from the status when a proxy answered instead. */
export function errorFromResponse(response: Pick<Response, 'status' | 'statusText' | 'headers'>, body: unknown): ApiError {
  const retryAfter = Number(response.headers.get('Retry-After'))
  const retryAfterSeconds = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error
  if (error && typeof error.code === 'string' && typeof error.message === 'string') {
    return new ApiError(response.status, error.code, error.message, retryAfterSeconds)
  }
  const fallback =
    response.status >= 500
      ? 'the server failed to answer; try again shortly'
      : `the request failed (${response.status} ${response.statusText})`
  return new ApiError(response.status, `http_${response.status}`, fallback, retryAfterSeconds)
}

/** A sentence for the user, whatever was thrown. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 429 && error.retryAfterSeconds !== null) {
      return `${capitalise(error.message)}. Try again in ${error.retryAfterSeconds} s.`
    }
    return capitalise(error.message) + (/[.!?]$/.test(error.message) ? '' : '.')
  }
  if (error instanceof Error) return capitalise(error.message)
  return 'Something went wrong.'
}

function capitalise(text: string): string {
  return text.length === 0 ? text : text[0].toUpperCase() + text.slice(1)
}
