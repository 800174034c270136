// Starts one real `codesync run` (the debug binary cargo built, serving this build of the web
// app from frontend/dist) on ephemeral ports with a fresh data directory, for the whole suite.

import { spawn } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startStandInProvider } from './stand-in-provider'

const frontendDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolvePort(port))
    })
  })
}

function codesyncBinary(): string {
  const explicit = process.env.CODESYNC_E2E_BINARY
  if (explicit) return explicit
  const targetDir = process.env.CARGO_TARGET_DIR ?? join(frontendDir, '..', 'target')
  return join(targetDir, 'debug', 'codesync')
}

async function waitUntilReady(baseUrl: string, exited: () => string | null, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const exit = exited()
    if (exit !== null) throw new Error(`codesync exited before it was ready (${exit}); see its log`)
    try {
      const response = await fetch(`${baseUrl}/readyz`)
      if (response.ok) return
    } catch {
      // not listening yet
    }
    await new Promise((done) => setTimeout(done, 200))
  }
  throw new Error(`codesync was not ready within ${timeoutMs} ms`)
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const binary = codesyncBinary()
  if (!existsSync(binary)) throw new Error(`no codesync binary at ${binary}: build it (cargo build -p codesync) or set CODESYNC_E2E_BINARY`)
  const webDir = join(frontendDir, 'dist')
  if (!existsSync(join(webDir, 'index.html'))) throw new Error('frontend/dist has no build: run `npm run build` first')

  const dataDir = mkdtempSync(join(tmpdir(), 'codesync-e2e-'))
  const [httpPort, grpcPort] = [await freePort(), await freePort()]
  const baseUrl = `http://127.0.0.1:${httpPort}`
  mkdirSync(join(frontendDir, 'test-results'), { recursive: true })
  const log = createWriteStream(join(frontendDir, 'test-results', 'codesync-server.log'))
  const provider = await startStandInProvider()
  const server = spawn(binary, ['run'], {
    env: {
      ...process.env,
      CODESYNC_DATA_DIR: dataDir,
      CODESYNC_HTTP_ADDR: `127.0.0.1:${httpPort}`,
      CODESYNC_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
      CODESYNC_WEB_DIR: webDir,
      // Every browser of the suite shares 127.0.0.1: the per-IP limits are for the real world.
      CODESYNC_RATE_LIMIT_PER_MINUTE: '100000',
      CODESYNC_MAX_CONNECTIONS_PER_ADDRESS: '100000',
      CODESYNC_MAX_STREAMS_PER_USER: '100000',
      CODESYNC_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE: '10000',
      CODESYNC_REGISTRATIONS_PER_IP_PER_HOUR: '10000',
      // Short-lived access tokens, so every test also exercises the silent refresh.
      CODESYNC_ACCESS_TOKEN_TTL_SECS: process.env.CODESYNC_E2E_ACCESS_TOKEN_TTL_SECS ?? '20',
      CODESYNC_LOG: 'info',
      // The assistant answers from a stand-in of OpenAI's API (no network here).
      CODESYNC_AI_PROVIDER: 'openai',
      CODESYNC_AI_BASE_URL: provider.baseUrl,
      CODESYNC_AI_API_KEY: 'e2e-key',
      CODESYNC_AI_MODEL: 'stand-in',
      CODESYNC_AI_REQUESTS_PER_MINUTE: '1000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  server.stdout.pipe(log)
  server.stderr.pipe(log)
  let exit: string | null = null
  server.once('exit', (code, signal) => {
    exit = `code ${code}, signal ${signal}`
  })
  await waitUntilReady(baseUrl, () => exit, 60_000)
  process.env.CODESYNC_E2E_BASE_URL = baseUrl
  // The first account of an installation is its administrator: made here, before any test's.
  const admin = { username: 'e2eadmin', email: 'e2eadmin@example.test', password: 'correct horse battery staple' }
  const registered = await fetch(`${baseUrl}/api/auth/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(admin),
  })
  if (registered.status !== 201) throw new Error(`the administrator could not register: ${registered.status} ${await registered.text()}`)
  process.env.CODESYNC_E2E_ADMIN_EMAIL = admin.email
  process.env.CODESYNC_E2E_ADMIN_PASSWORD = admin.password

  return async () => {
    if (exit === null) {
      const exited = new Promise((done) => server.once('exit', done))
      server.kill('SIGTERM')
      await Promise.race([exited, new Promise((done) => setTimeout(done, 10_000))])
      if (exit === null) server.kill('SIGKILL')
    }
    provider.server.closeAllConnections()
    provider.server.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
}
