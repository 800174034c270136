// Two stock Yjs clients (yjs + y-websocket, with `ws` as Node's WebSocket)
// edit one file concurrently through CodeSync's /ws/files endpoint, converge,
// and see each other's awareness. Prints a JSON summary; exits 1 on failure.
//
// Environment: CODESYNC_WS (ws://host:port), FILE_ID, TOKEN_A, TOKEN_B, NAME_A; CODESYNC_WS_B,
// when set, is where the second client connects (another gateway of the same cluster).
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const { CODESYNC_WS, CODESYNC_WS_B, FILE_ID, TOKEN_A, TOKEN_B, NAME_A } = process.env
const TIMEOUT_MS = 20000

function fail (message) {
  console.error(`interop: ${message}`)
  process.exit(1)
}

function client (token, colour, server = CODESYNC_WS) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(`${server}/ws/files`, FILE_ID, doc, {
    params: { token },
    WebSocketPolyfill: WebSocket,
    disableBc: true
  })
  provider.awareness.setLocalStateField('user', { name: 'whoever', color: colour })
  return { doc, provider, text: doc.getText('content') }
}

function until (what, predicate) {
  return new Promise((resolve) => {
    const started = Date.now()
    const timer = setInterval(() => {
      if (predicate()) {
        clearInterval(timer)
        resolve()
      } else if (Date.now() - started > TIMEOUT_MS) {
        clearInterval(timer)
        fail(`timed out waiting until ${what}`)
      }
    }, 10)
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const a = client(TOKEN_A, '#e06c75')
const b = client(TOKEN_B, '#61afef', CODESYNC_WS_B || CODESYNC_WS)
await until('both clients are synced', () => a.provider.synced && b.provider.synced)
const initial = a.text.toString()

// Concurrent edits: both type at once, at both ends and in the middle.
const edits = []
for (let round = 0; round < 40; round++) {
  edits.push((async () => {
    await sleep(Math.random() * 30)
    a.text.insert(0, 'a')
  })())
  edits.push((async () => {
    await sleep(Math.random() * 30)
    b.text.insert(b.text.length, 'b')
    if (round % 10 === 0) b.text.insert(Math.floor(b.text.length / 2), '|')
  })())
}
await Promise.all(edits)
await until('the two documents converge', () =>
  a.text.toString() === b.text.toString() && a.text.length === initial.length + 84)

// Awareness: a cursor set on one client reaches the other, with the
// server-enforced name of the signed-in user.
a.provider.awareness.setLocalStateField('cursor', { anchor: 3, head: 5 })
await until("b sees a's cursor", () => {
  const state = b.provider.awareness.getStates().get(a.doc.clientID)
  return state && state.cursor && state.cursor.head === 5
})
const seen = b.provider.awareness.getStates().get(a.doc.clientID)
if (seen.user.name !== NAME_A) fail(`awareness name is ${seen.user.name}, expected ${NAME_A}`)
if (seen.user.color !== '#e06c75') fail('awareness colour was not kept')

// A disconnect clears the state for the other client.
a.provider.destroy()
await until("a's awareness is gone at b", () => !b.provider.awareness.getStates().has(a.doc.clientID))

console.log(JSON.stringify({ text: b.text.toString(), awareness_user: seen.user }))
b.provider.destroy()
process.exit(0)
