import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as Y from 'yjs'
import * as syncProtocol from 'y-protocols/sync'
import { FileSession, closeReason, webSocketBase } from './fileSession'

/** A browser-like WebSocket whose server side the test plays, byte for byte. */
class FakeServerSocket extends EventTarget {
  static instances: FakeServerSocket[] = []
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSING = 2
  static readonly CLOSED = 3
  readonly CONNECTING = 0
  readonly OPEN = 1
  readonly CLOSING = 2
  readonly CLOSED = 3
  readyState = 0
  binaryType = 'arraybuffer'
  sent: Uint8Array[] = []
  onopen: ((event: Event) => void) | null = null
  onmessage: ((event: { data: ArrayBuffer }) => void) | null = null
  onclose: ((event: { code: number; reason: string }) => void) | null = null
  onerror: ((event: Event) => void) | null = null
  constructor(readonly url: string) {
    super()
    FakeServerSocket.instances.push(this)
  }
  send(data: Uint8Array | ArrayBuffer) {
    this.sent.push(data instanceof Uint8Array ? data : new Uint8Array(data))
  }
  close() {
    this.readyState = 3
  }
  open() {
    this.readyState = 1
    const event = new Event('open')
    this.dispatchEvent(event)
    this.onopen?.(event)
  }
  receive(message: Uint8Array) {
    this.onmessage?.({ data: message.slice().buffer })
  }
  serverClose(code: number, reason = '') {
    this.readyState = 3
    this.onclose?.({ code, reason })
  }
}

function message(write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder()
  write(encoder)
  return encoding.toUint8Array(encoder)
}

/** The server's answer to the client's step 1: its whole document as sync step 2. */
function syncStep2(serverDoc: Y.Doc): Uint8Array {
  return message((encoder) => {
    encoding.writeVarUint(encoder, 0)
    syncProtocol.writeSyncStep2(encoder, serverDoc)
  })
}

const saved = (count: number) => message((encoder) => (encoding.writeVarUint(encoder, 100), encoding.writeVarUint(encoder, count)))
const refused = (reason: string) =>
  message((encoder) => (encoding.writeVarUint(encoder, 2), encoding.writeVarUint(encoder, 0), encoding.writeVarString(encoder, reason)))

function isUpdateMessage(bytes: Uint8Array): boolean {
  const decoder = decoding.createDecoder(bytes)
  return decoding.readVarUint(decoder) === 0 && [1, 2].includes(decoding.readVarUint(decoder))
}

describe('FileSession against a scripted server', () => {
  let session: FileSession | null = null
  beforeEach(() => {
    vi.useFakeTimers()
    FakeServerSocket.instances = []
  })
  afterEach(() => {
    session?.destroy()
    session = null
    vi.useRealTimers()
  })

  function open(checkAccess?: () => Promise<string | null>) {
    session = new FileSession({
      fileId: 'file-1',
      serverUrl: 'ws://server',
      accessToken: 'token-1',
      user: { id: 'u1', name: 'ann', colour: '#61afef' },
      WebSocketImpl: FakeServerSocket as unknown as typeof WebSocket,
      checkAccess,
    })
    return { session, socket: FakeServerSocket.instances.at(-1)! }
  }

  it('connects with the token and asks for acknowledgements, then syncs the server’s text', () => {
    const { session, socket } = open()
    expect(socket.url).toBe('ws://server/ws/files/file-1?token=token-1&ack=1')
    socket.open()
    const serverDoc = new Y.Doc()
    serverDoc.getText('content').insert(0, 'print(1)\n')
    socket.receive(syncStep2(serverDoc))
    expect(session.text.toString()).toBe('print(1)\n')
    expect(session.connectionState).toMatchObject({ status: 'connected', synced: true, hasUnsavedEdits: false })
  })

  it('is saved once the server acknowledges the message that carried the edit', () => {
    const { session, socket } = open()
    socket.open()
    socket.receive(syncStep2(new Y.Doc()))
    session.text.insert(0, 'x')
    expect(session.connectionState.hasUnsavedEdits).toBe(true)
    const updatesSent = socket.sent.filter(isUpdateMessage).length
    socket.receive(saved(updatesSent))
    expect(session.connectionState.hasUnsavedEdits).toBe(false)
  })

  it('reports a refused edit with the server’s reason, and stays unsaved', () => {
    const { session, socket } = open()
    socket.open()
    socket.receive(syncStep2(new Y.Doc()))
    session.text.insert(0, 'too much')
    socket.receive(refused('the document has reached its size limit: the update was not applied'))
    socket.receive(saved(99))
    expect(session.connectionState.refusal).toEqual({
      reason: 'the document has reached its size limit: the update was not applied',
      count: 1,
    })
    expect(session.connectionState.hasUnsavedEdits).toBe(true)
  })

  it('ends for good when the file is deleted, and uses a refreshed token to reconnect', async () => {
    const { session, socket } = open()
    socket.open()
    session.setAccessToken('token-2')
    socket.serverClose(1006)
    await vi.advanceTimersByTimeAsync(6_000)
    const second = FakeServerSocket.instances.at(-1)!
    expect(second.url).toContain('token=token-2')
    second.open()
    second.serverClose(4404, 'the file was deleted')
    await vi.advanceTimersByTimeAsync(10_000)
    expect(session.connectionState).toMatchObject({ status: 'closed', closedReason: 'This file was deleted.' })
    expect(FakeServerSocket.instances.at(-1)).toBe(second)
  })

  it('asks why after three refused connections, and stops if the file is gone', async () => {
    const checkAccess = vi.fn(async () => 'This file was deleted, or you no longer have access to it.')
    const { session } = open(checkAccess)
    for (let attempt = 0; attempt < 3; attempt++) {
      FakeServerSocket.instances.at(-1)!.serverClose(1006)
      await vi.advanceTimersByTimeAsync(6_000)
    }
    expect(checkAccess).toHaveBeenCalledTimes(1)
    expect(session.connectionState.status).toBe('closed')
    const sockets = FakeServerSocket.instances.length
    await vi.advanceTimersByTimeAsync(30_000)
    expect(FakeServerSocket.instances).toHaveLength(sockets)
  })

  it('says offline, with unsaved edits, when the connection stays down', async () => {
    const { session, socket } = open()
    socket.open()
    socket.receive(syncStep2(new Y.Doc()))
    socket.serverClose(1006)
    session.text.insert(0, 'written offline')
    expect(session.connectionState).toMatchObject({ status: 'reconnecting', hasUnsavedEdits: true })
    await vi.advanceTimersByTimeAsync(9_000)
    expect(session.connectionState.status).toBe('offline')
  })
})

describe('file sessions', () => {
  it('explain why the server ended them', () => {
    expect(closeReason(4404, 'the file was deleted')).toBe('This file was deleted.')
    expect(closeReason(1008, 'you were removed from the room')).toBe('You were removed from the room.')
    expect(closeReason(1009, '')).toMatch(/too large/)
    expect(closeReason(1011, '')).toBe('The server closed the connection (1011).')
  })

  it('connect with wss on https pages', () => {
    expect(webSocketBase({ protocol: 'https:', host: 'code.example:8443' })).toBe('wss://code.example:8443')
    expect(webSocketBase({ protocol: 'http:', host: '127.0.0.1:8080' })).toBe('ws://127.0.0.1:8080')
  })
})
