import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { RoomConnection, TypingReporter, backoffDelay } from './roomConnection'

/** Just enough of a browser WebSocket to drive RoomConnection. */
class FakeSocket {
  static instances: FakeSocket[] = []
  readyState = 0
  sent: string[] = []
  onopen: (() => void) | null = null
  onmessage: ((event: { data: unknown }) => void) | null = null
  onclose: ((event: { code: number; reason: string }) => void) | null = null
  constructor(readonly url: string) {
    FakeSocket.instances.push(this)
  }
  send(data: string) {
    this.sent.push(data)
  }
  close() {
    this.readyState = 3
  }
  open() {
    this.readyState = 1
    this.onopen?.()
  }
  serverClose(code: number, reason = '') {
    this.readyState = 3
    this.onclose?.({ code, reason })
  }
}

describe('RoomConnection', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    FakeSocket.instances = []
  })
  afterEach(() => vi.useRealTimers())

  function connect(checkAccess?: () => Promise<string | null>) {
    const statuses: string[] = []
    const messages: unknown[] = []
    const connection = new RoomConnection({
      checkAccess,
      url: (token) => `ws://host/ws/rooms/r?token=${token}`,
      accessToken: async () => 'token-1',
      onMessage: (message) => messages.push(message),
      onStatus: (status, reason) => statuses.push(reason ? `${status}: ${reason}` : status),
      WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
      backoffBaseMs: 100,
      backoffMaxMs: 1000,
    })
    return { connection, statuses, messages }
  }

  it('connects with a fresh token, parses messages and drops malformed ones', async () => {
    const { connection, statuses, messages } = connect()
    connection.start()
    await vi.runOnlyPendingTimersAsync()
    const socket = FakeSocket.instances[0]
    expect(socket.url).toBe('ws://host/ws/rooms/r?token=token-1')
    socket.open()
    socket.onmessage?.({ data: '{"type":"pong"}' })
    socket.onmessage?.({ data: '{"type":"chat"}' })
    socket.onmessage?.({ data: new ArrayBuffer(2) })
    expect(messages).toEqual([{ type: 'pong' }])
    expect(statuses).toEqual(['connecting', 'connected'])
  })

  it('reconnects after a drop and announces the focused file again', async () => {
    const { connection, statuses } = connect()
    connection.start()
    await vi.runOnlyPendingTimersAsync()
    FakeSocket.instances[0].open()
    connection.focus('file-9')
    FakeSocket.instances[0].serverClose(1006)
    expect(statuses.at(-1)).toBe('reconnecting')
    await vi.advanceTimersByTimeAsync(200)
    const second = FakeSocket.instances[1]
    second.open()
    expect(second.sent).toEqual(['{"type":"focus","file_id":"file-9"}'])
  })

  it('stops for good when removed from the room (close 1008)', async () => {
    const { connection, statuses } = connect()
    connection.start()
    await vi.runOnlyPendingTimersAsync()
    FakeSocket.instances[0].open()
    FakeSocket.instances[0].serverClose(1008, 'you were removed from the room')
    await vi.advanceTimersByTimeAsync(5000)
    expect(FakeSocket.instances).toHaveLength(1)
    expect(statuses.at(-1)).toBe('closed: you were removed from the room')
  })

  it('drops a connection whose ping goes unanswered, and reconnects', async () => {
    const { connection, statuses } = connect()
    connection.start()
    await vi.runOnlyPendingTimersAsync()
    FakeSocket.instances[0].open()
    await vi.advanceTimersByTimeAsync(25_000)
    expect(FakeSocket.instances[0].sent).toContain('{"type":"ping"}')
    await vi.advanceTimersByTimeAsync(10_000)
    expect(statuses.at(-1)).toBe('reconnecting')
    await vi.advanceTimersByTimeAsync(1_000)
    expect(FakeSocket.instances).toHaveLength(2)
  })

  it('a pong keeps the connection', async () => {
    const { connection } = connect()
    connection.start()
    await vi.runOnlyPendingTimersAsync()
    const socket = FakeSocket.instances[0]
    socket.open()
    await vi.advanceTimersByTimeAsync(25_000)
    socket.onmessage?.({ data: '{"type":"pong"}' })
    await vi.advanceTimersByTimeAsync(20_000)
    expect(FakeSocket.instances).toHaveLength(1)
  })

  it('asks why after failures before the socket opens, and stops when access is gone', async () => {
    const checkAccess = vi.fn(async () => 'You are no longer a member of this room.')
    const { connection, statuses } = connect(checkAccess)
    connection.start()
    for (let attempt = 0; attempt < 3; attempt++) {
      await vi.runOnlyPendingTimersAsync()
      FakeSocket.instances.at(-1)!.serverClose(1006)
    }
    await vi.runOnlyPendingTimersAsync()
    expect(checkAccess).toHaveBeenCalledTimes(1)
    expect(statuses.at(-1)).toBe('closed: You are no longer a member of this room.')
    const sockets = FakeSocket.instances.length
    await vi.advanceTimersByTimeAsync(30_000)
    expect(FakeSocket.instances).toHaveLength(sockets)
  })

  it('does not send while disconnected', () => {
    const { connection } = connect()
    expect(connection.send({ type: 'chat', text: 'hi' })).toBe(false)
  })
})

describe('backoffDelay', () => {
  it('grows to its cap with jitter in the upper half', () => {
    expect(backoffDelay(0, 500, 10_000, () => 0)).toBe(250)
    expect(backoffDelay(0, 500, 10_000, () => 1)).toBe(500)
    expect(backoffDelay(3, 500, 10_000, () => 1)).toBe(4000)
    expect(backoffDelay(50, 500, 10_000, () => 0.5)).toBe(7500)
  })
})

describe('TypingReporter', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('says typing once, renews it while typing continues, and stops after a pause', () => {
    const announced: boolean[] = []
    const reporter = new TypingReporter(
      (typing) => announced.push(typing),
      2_500,
      4_000,
      () => Date.now(),
    )
    reporter.edited()
    vi.advanceTimersByTime(1000)
    reporter.edited()
    expect(announced).toEqual([true])
    for (let second = 0; second < 4; second++) {
      vi.advanceTimersByTime(1000)
      reporter.edited()
    }
    expect(announced).toEqual([true, true])
    vi.advanceTimersByTime(2_500)
    expect(announced).toEqual([true, true, false])
    reporter.stop()
    expect(announced).toEqual([true, true, false])
  })
})
