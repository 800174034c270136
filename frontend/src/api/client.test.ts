import { describe, expect, it, vi } from 'vitest'
import { ApiClient, ApiError, describeError, type LockRunner } from './client'
import { memoryTokens, type Tokens } from '../auth/tokens'
import { fakeAccessToken } from '../testing/jwt'

const NOW = 1_800_000_000_000
const valid = (name: string) => fakeAccessToken({ iat: NOW / 1000, exp: NOW / 1000 + 900, sub: name })
const expired = (name: string) => fakeAccessToken({ iat: NOW / 1000 - 1000, exp: NOW / 1000 - 100, sub: name })

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  })
}

/** A fake server: `/api/auth/refresh` rotates tokens (once per token, as the real one does). */
function fakeServer(options: { acceptedAccess: () => string | null } = { acceptedAccess: () => null }) {
  const used = new Set<string>()
  let generation = 0
  const calls: string[] = []
  const fetchImpl = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input)
    calls.push(url)
    const headers = new Headers(init?.headers)
    if (url.endsWith('/api/auth/refresh')) {
      await new Promise((resolve) => setTimeout(resolve, 5))
      const { refresh_token } = JSON.parse(String(init?.body)) as { refresh_token: string }
      if (used.has(refresh_token))
        return json(401, { error: { code: 'refresh_token_reused', message: 'this refresh token was already used' } })
      used.add(refresh_token)
      generation += 1
      return json(200, { access_token: valid(`gen${generation}`), refresh_token: `refresh-${generation}` })
    }
    const token = headers.get('Authorization')?.replace('Bearer ', '') ?? ''
    const accepted = options.acceptedAccess()
    if (accepted !== null && token !== accepted)
      return json(401, { error: { code: 'token_expired', message: 'the access token has expired' } })
    return json(200, { ok: true, token })
  })
  return { fetchImpl, calls, refreshCalls: () => calls.filter((url) => url.endsWith('/refresh')).length }
}

/** One lock shared by "tabs" in this test, like the Web Locks API across a browser's tabs. */
function sharedLock(): LockRunner {
  let tail: Promise<unknown> = Promise.resolve()
  return <T>(_name: string, task: () => Promise<T>) => {
    const run = tail.then(task, task)
    tail = run.catch(() => undefined)
    return run
  }
}

describe('ApiClient', () => {
  it('refreshes an expired access token before the request, once for many concurrent requests', async () => {
    const server = fakeServer()
    const storage = memoryTokens({ accessToken: expired('old'), refreshToken: 'refresh-0' })
    const client = new ApiClient({ storage, fetch: server.fetchImpl, now: () => NOW })
    const results = await Promise.all([client.get<{ token: string }>('/api/a'), client.get('/api/b'), client.get('/api/c')])
    expect(server.refreshCalls()).toBe(1)
    expect(results[0].token).toBe(valid('gen1'))
    expect(storage.load()).toEqual({ accessToken: valid('gen1'), refreshToken: 'refresh-1' })
  })

  it('retries once with a new token when the server says the token expired in flight', async () => {
    let accepted: string | null = valid('gen1')
    const server = fakeServer({ acceptedAccess: () => accepted })
    const storage = memoryTokens({ accessToken: valid('stale'), refreshToken: 'refresh-0' })
    const client = new ApiClient({ storage, fetch: server.fetchImpl, now: () => NOW })
    await expect(client.get<{ token: string }>('/api/rooms')).resolves.toMatchObject({ token: valid('gen1') })
    expect(server.refreshCalls()).toBe(1)
    accepted = 'something else entirely'
    await expect(client.get('/api/rooms')).rejects.toMatchObject({ status: 401, code: 'token_expired' })
    expect(server.refreshCalls()).toBe(2) // one refresh per request, never a loop
  })

  it('two tabs refreshing at once rotate the refresh token once; the second adopts the first one’s tokens', async () => {
    const server = fakeServer()
    const storage = memoryTokens({ accessToken: expired('old'), refreshToken: 'refresh-0' })
    const lock = sharedLock()
    const sessionEnded = vi.fn()
    const tabA = new ApiClient({ storage, fetch: server.fetchImpl, lock, now: () => NOW, onSessionEnded: sessionEnded })
    const tabB = new ApiClient({ storage, fetch: server.fetchImpl, lock, now: () => NOW, onSessionEnded: sessionEnded })
    const [a, b] = await Promise.all([tabA.refresh(expired('old')), tabB.refresh(expired('old'))])
    expect(server.refreshCalls()).toBe(1)
    expect(a).toEqual(b)
    expect(sessionEnded).not.toHaveBeenCalled()
  })

  it('ends the session when the refresh token was reused (the server revoked the family)', async () => {
    const server = fakeServer()
    const tokens: Tokens = { accessToken: expired('old'), refreshToken: 'refresh-0' }
    const storage = memoryTokens(tokens)
    const sessionEnded = vi.fn()
    const client = new ApiClient({ storage, fetch: server.fetchImpl, now: () => NOW, onSessionEnded: sessionEnded })
    await client.refresh()
    storage.save(tokens) // a stolen copy of the old tokens is presented again
    await expect(client.refresh()).rejects.toMatchObject({ code: 'refresh_token_reused' })
    expect(storage.load()).toBeNull()
    expect(sessionEnded).toHaveBeenCalledWith('refresh_token_reused')
  })

  it('keeps the session when the network is down, and says so', async () => {
    const storage = memoryTokens({ accessToken: expired('old'), refreshToken: 'refresh-0' })
    const offline = vi.fn(async () => {
      throw new TypeError('Failed to fetch')
    })
    const client = new ApiClient({ storage, fetch: offline, now: () => NOW })
    const error = await client.get('/api/rooms').catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).isNetworkError).toBe(true)
    expect(storage.load()).not.toBeNull()
  })

  it('keeps the session when the refresh endpoint is rate limited or failing, and hands out the old token', async () => {
    const storage = memoryTokens({ accessToken: expired('old'), refreshToken: 'refresh-0' })
    const sessionEnded = vi.fn()
    const busy = vi.fn(async () => json(503, { error: { code: 'service_unavailable', message: 'the auth service cannot be reached' } }))
    const client = new ApiClient({ storage, fetch: busy, now: () => NOW, onSessionEnded: sessionEnded })
    expect(await client.freshAccessToken()).toBe(expired('old'))
    expect(storage.load()).toEqual({ accessToken: expired('old'), refreshToken: 'refresh-0' })
    expect(sessionEnded).not.toHaveBeenCalled()
    // Signed out for real (the refresh token refused): no token at all.
    const refused = vi.fn(async () => json(401, { error: { code: 'invalid_token', message: 'the refresh token is not valid' } }))
    const signedOut = new ApiClient({ storage, fetch: refused, now: () => NOW, onSessionEnded: sessionEnded })
    expect(await signedOut.freshAccessToken()).toBeNull()
    expect(sessionEnded).toHaveBeenCalledWith('session_expired')
  })

  it('turns the error shape, a proxy’s HTML page and Retry-After into ApiErrors', async () => {
    const responses = [
      json(409, { error: { code: 'file_exists', message: 'a file with this name already exists in the room' } }),
      new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }),
      json(429, { error: { code: 'rate_limited', message: 'too many requests; slow down' } }, { 'Retry-After': '7' }),
    ]
    const client = new ApiClient({ storage: memoryTokens(), fetch: vi.fn(async () => responses.shift()!) })
    const conflict = (await client.post('/api/x', {}, false).catch((caught: unknown) => caught)) as ApiError
    expect([conflict.status, conflict.code, describeError(conflict)]).toEqual([
      409,
      'file_exists',
      'A file with this name already exists in the room.',
    ])
    const proxy = (await client.post('/api/x', {}, false).catch((caught: unknown) => caught)) as ApiError
    expect([proxy.status, proxy.code]).toEqual([502, 'http_502'])
    const limited = (await client.post('/api/x', {}, false).catch((caught: unknown) => caught)) as ApiError
    expect(limited.retryAfterSeconds).toBe(7)
    expect(describeError(limited)).toBe('Too many requests; slow down. Try again in 7 s.')
  })

  it('sends JSON with the bearer token, and nothing for unauthenticated calls', async () => {
    const seen: Headers[] = []
    const fetchImpl = vi.fn(async (_input: RequestInfo | URL, init?: RequestInit) => {
      seen.push(new Headers(init?.headers))
      return new Response(null, { status: 204 })
    })
    const client = new ApiClient({
      storage: memoryTokens({ accessToken: valid('me'), refreshToken: 'r' }),
      fetch: fetchImpl,
      now: () => NOW,
    })
    await client.patch('/api/files/1', { filename: 'a.py' })
    await client.post('/api/auth/login', { email: 'a', password: 'b' }, false)
    expect(seen[0].get('Authorization')).toBe(`Bearer ${valid('me')}`)
    expect(seen[0].get('Content-Type')).toBe('application/json')
    expect(seen[1].get('Authorization')).toBeNull()
  })
})
