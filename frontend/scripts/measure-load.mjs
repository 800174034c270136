// How long the web app takes to load, and what it downloads, in Debian's Chromium against a
// running server (docs/benchmarks.md):
//   node frontend/scripts/measure-load.mjs [http://127.0.0.1:8080] [runs]
// It registers a user through the API, creates a room with a 2,000-line file, then measures in
// fresh browser contexts (cold cache) and once more warm (a reload): the sign-in page until its
// form shows, and the room page until the editor shows the file, connected and saved.
import { readFileSync } from 'node:fs'
import { chromium } from 'playwright-core'

const base = process.argv[2] ?? 'http://127.0.0.1:8080'
const runs = Number(process.argv[3] ?? 7)
const flags = JSON.parse(readFileSync(new URL('../e2e/chromium-flags.json', import.meta.url), 'utf8'))

async function api(path, body, token) {
  const response = await fetch(base + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  })
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`)
  return response.json()
}

const name = `bench${Date.now().toString(36)}`
const session = await api('/api/auth/register', { username: name, email: `${name}@example.test`, password: 'correct horse battery staple' })
const room = await api('/api/rooms', { name: 'Load benchmark', is_public: false }, session.access_token)
const content = Array.from({ length: 2000 }, (_, line) => `def function_${line}(value):\n    return value * ${line}  # line ${line}`).join(
  '\n',
)
const file = await api(`/api/rooms/${room.id}/files`, { filename: 'big.py', content }, session.access_token)
const roomUrl = `${base}/rooms/${room.id}?file=${file.id}`

/** Encoded bytes and request count of everything the page fetched over HTTP. */
function countTransfers(page) {
  const totals = { bytes: 0, requests: 0 }
  page.on('requestfinished', async (request) => {
    const sizes = await request.sizes().catch(() => null)
    if (sizes) totals.bytes += sizes.responseBodySize + sizes.responseHeadersSize
    totals.requests += 1
  })
  return totals
}

async function signedInContext(browser) {
  const context = await browser.newContext()
  await context.addInitScript(
    ([tokens]) => localStorage.setItem('codesync.session', tokens),
    [JSON.stringify({ accessToken: session.access_token, refreshToken: session.refresh_token })],
  )
  return context
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: flags })
const results = { signIn: [], room: [], roomWarm: [], signInBytes: 0, roomBytes: 0, roomWarmBytes: 0, roomRequests: 0 }
for (let run = 0; run < runs; run++) {
  const anonymous = await browser.newContext()
  const signInPage = await anonymous.newPage()
  const signInTransfers = countTransfers(signInPage)
  let started = performance.now()
  await signInPage.goto(`${base}/login`)
  await signInPage.getByRole('button', { name: 'Sign in' }).waitFor()
  results.signIn.push(performance.now() - started)
  results.signInBytes = signInTransfers.bytes
  await anonymous.close()

  const context = await signedInContext(browser)
  const page = await context.newPage()
  const transfers = countTransfers(page)
  started = performance.now()
  await page.goto(roomUrl)
  await page.getByText('Connected · saved').waitFor({ timeout: 60_000 })
  await page.getByText('def function_0').waitFor()
  results.room.push(performance.now() - started)
  await page.waitForTimeout(500) // workers and late chunks
  results.roomBytes = transfers.bytes
  results.roomRequests = transfers.requests
  const warmTransfers = countTransfers(page)
  started = performance.now()
  await page.reload()
  await page.getByText('Connected · saved').waitFor({ timeout: 60_000 })
  await page.getByText('def function_0').waitFor()
  results.roomWarm.push(performance.now() - started)
  await page.waitForTimeout(500)
  results.roomWarmBytes = warmTransfers.bytes
  await context.close()
}
await browser.close()

const kib = (bytes) => `${(bytes / 1024).toFixed(0)} KiB`
console.log(`web app load, ${runs} runs, median (file: 2,000 lines, ${kib(content.length)})`)
console.log(`  sign-in page, cold cache:  ${median(results.signIn).toFixed(0)} ms, ${kib(results.signInBytes)} transferred`)
console.log(
  `  room + editor, cold cache: ${median(results.room).toFixed(0)} ms, ${kib(results.roomBytes)} transferred in ${results.roomRequests} requests`,
)
console.log(`  room + editor, reload:     ${median(results.roomWarm).toFixed(0)} ms, ${kib(results.roomWarmBytes)} transferred`)
