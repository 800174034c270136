// Token bookkeeping that needs no network: reading a JWT's expiry, and where tokens live.

export interface Tokens {
  accessToken: string
  refreshToken: string
}

/** Where the session's tokens are kept; `localStorage` in the browser, a Map in tests. */
export interface TokenStorage {
  load(): Tokens | null
  save(tokens: Tokens | null): void
}

export const TOKEN_STORAGE_KEY = 'codesync.session'

/**
 * The `exp` claim of a JWT in milliseconds since the epoch, or `null` when the token cannot be
 * read. The signature is not checked: the server does that; the client only needs to know when
 * to refresh.
 */
export function accessTokenExpiry(token: string): number | null {
  return tokenTimes(token)?.expiresAt ?? null
}

/** The `sub` claim (the user id), or null for a token that is not a readable JWT. */
export function tokenSubject(token: string): string | null {
  const claims = tokenClaims(token)
  return typeof claims?.sub === 'string' ? claims.sub : null
}

function tokenClaims(token: string): Record<string, unknown> | null {
  const parts = token.split('.')
  if (parts.length !== 3) return null
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/')
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4)
    const claims: unknown = JSON.parse(atob(padded))
    return typeof claims === 'object' && claims !== null && !Array.isArray(claims) ? (claims as Record<string, unknown>) : null
  } catch {
    return null
  }
}

/** `iat` and `exp` in milliseconds; `null` for a token that is not a readable JWT. */
export function tokenTimes(token: string): { issuedAt: number | null; expiresAt: number } | null {
  const claims = tokenClaims(token)
  if (claims === null) return null
  const { exp, iat } = claims
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return null
  return { issuedAt: typeof iat === 'number' && Number.isFinite(iat) ? iat * 1000 : null, expiresAt: exp * 1000 }
}

/**
 * How long before expiry to refresh: `marginMs`, but never more than a quarter of the token's
 * lifetime, so a server configured with short-lived tokens is not asked for a new one every second.
 */
export function refreshMargin(token: string, marginMs: number): number {
  const times = tokenTimes(token)
  if (times === null || times.issuedAt === null) return marginMs
  return Math.min(marginMs, Math.max(0, (times.expiresAt - times.issuedAt) / 4))
}

/** Whether the access token is due for a refresh at `now` (an unreadable token always is). */
export function expiresWithin(token: string, marginMs: number, now: number): boolean {
  const expiry = accessTokenExpiry(token)
  return expiry === null || expiry - now <= refreshMargin(token, marginMs)
}

function isTokens(value: unknown): value is Tokens {
  if (typeof value !== 'object' || value === null) return false
  const candidate = value as Record<string, unknown>
  return typeof candidate.accessToken === 'string' && typeof candidate.refreshToken === 'string'
}

/** Parses what `localStorageTokens` wrote; anything else (hand-edited, old format) is no session. */
export function parseStoredTokens(raw: string | null): Tokens | null {
  if (raw === null) return null
  try {
    const value: unknown = JSON.parse(raw)
    return isTokens(value) ? { accessToken: value.accessToken, refreshToken: value.refreshToken } : null
  } catch {
    return null
  }
}

export function localStorageTokens(storage: Storage): TokenStorage {
  return {
    load: () => parseStoredTokens(storage.getItem(TOKEN_STORAGE_KEY)),
    save: (tokens) => {
      if (tokens === null) storage.removeItem(TOKEN_STORAGE_KEY)
      else storage.setItem(TOKEN_STORAGE_KEY, JSON.stringify(tokens))
    },
  }
}

export function memoryTokens(initial: Tokens | null = null): TokenStorage {
  let current = initial
  return {
    load: () => current,
    save: (tokens) => {
      current = tokens
    },
  }
}
