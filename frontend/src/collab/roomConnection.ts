// The `/ws/rooms/{id}` socket: presence, typing and chat, reconnecting with backoff and
// re-announcing the focused file after each reconnection.

import { parseRoomServerMessage, type RoomClientMessage, type RoomServerMessage } from './protocol'

export type RoomConnectionStatus = 'connecting' | 'connected' | 'reconnecting' | 'closed'

export interface RoomConnectionOptions {
  url: (token: string) => string
  /** A valid access token, refreshed if needed; `null` when signed out. */
  accessToken: () => Promise<string | null>
  onMessage: (message: RoomServerMessage) => void
  onStatus: (status: RoomConnectionStatus, reason?: string) => void
  WebSocketImpl?: typeof WebSocket
  /** Backoff delays are `base * 2^attempt`, capped, with jitter. */
  backoffBaseMs?: number
  backoffMaxMs?: number
  /**
   * Asked after connections keep failing before they open (a refused upgrade reaches a browser
   * only as 1006): why the room is out of reach, or null to keep retrying.
   */
  checkAccess?: () => Promise<string | null>
}

const PING_EVERY_MS = 25_000
/** A ping unanswered this long means a half-open connection: drop it and reconnect. */
const PONG_TIMEOUT_MS = 10_000

export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20))
  return Math.round(ceiling / 2 + (random() * ceiling) / 2)
}

export class RoomConnection {
  private socket: WebSocket | null = null
  private attempt = 0
  private stopped = false
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null
  private pingTimer: ReturnType<typeof setInterval> | null = null
  private pongTimer: ReturnType<typeof setTimeout> | null = null
  private focusedFileId: string | null = null
  private failuresBeforeOpen = 0
  private readonly options: Required<Omit<RoomConnectionOptions, 'WebSocketImpl' | 'checkAccess'>> &
    Pick<RoomConnectionOptions, 'checkAccess'> & { WebSocketImpl: typeof WebSocket }

  constructor(options: RoomConnectionOptions) {
    this.options = {
      backoffBaseMs: 500,
      backoffMaxMs: 10_000,
      WebSocketImpl: options.WebSocketImpl ?? WebSocket,
      ...options,
    } as RoomConnection['options']
  }

  start(): void {
    this.stopped = false
    void this.connect()
  }

  stop(): void {
    this.stopped = true
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer)
    this.clearPing()
    const socket = this.socket
    this.socket = null
    if (socket !== null && socket.readyState <= 1) socket.close(1000, 'left the room')
  }

  /** Sends when connected; returns whether the message went out. */
  send(message: RoomClientMessage): boolean {
    if (this.socket === null || this.socket.readyState !== 1) return false
    this.socket.send(JSON.stringify(message))
    return true
  }

  focus(fileId: string | null): void {
    this.focusedFileId = fileId
    this.send({ type: 'focus', file_id: fileId })
  }

  private async connect(): Promise<void> {
    if (this.stopped) return
    this.options.onStatus(this.attempt === 0 ? 'connecting' : 'reconnecting')
    const token = await this.options.accessToken()
    if (this.stopped) return
    if (token === null) {
      this.options.onStatus('closed', 'You are signed out.')
      return
    }
    const socket = new this.options.WebSocketImpl(this.options.url(token))
    this.socket = socket
    let opened = false
    socket.onopen = () => {
      if (this.socket !== socket) return
      opened = true
      this.attempt = 0
      this.failuresBeforeOpen = 0
      this.options.onStatus('connected')
      if (this.focusedFileId !== null) this.send({ type: 'focus', file_id: this.focusedFileId })
      this.clearPing()
      this.pingTimer = setInterval(() => this.ping(socket), PING_EVERY_MS)
    }
    socket.onmessage = (event: MessageEvent) => {
      if (this.socket !== socket || typeof event.data !== 'string') return
      // Anything from the server proves the connection alive.
      if (this.pongTimer !== null) clearTimeout(this.pongTimer)
      this.pongTimer = null
      const message = parseRoomServerMessage(event.data)
      if (message !== null) this.options.onMessage(message)
    }
    socket.onclose = (event: CloseEvent) => {
      if (this.socket !== socket) return
      if (event.code === 1008) {
        this.socket = null
        this.clearPing()
        // Removed from the room: reconnecting would only be refused.
        if (!this.stopped) this.options.onStatus('closed', event.reason || 'You no longer have access to this room.')
        return
      }
      this.dropAndReconnect(socket, opened)
    }
  }

  private ping(socket: WebSocket): void {
    if (this.socket !== socket || !this.send({ type: 'ping' })) return
    if (this.pongTimer !== null) return
    this.pongTimer = setTimeout(() => this.dropAndReconnect(socket, true), PONG_TIMEOUT_MS)
  }

  /** Forgets a socket that closed or went silent, and schedules the next attempt. */
  private dropAndReconnect(socket: WebSocket, opened: boolean): void {
    if (this.socket !== socket) return
    this.socket = null
    this.clearPing()
    socket.onclose = null
    if (socket.readyState <= 1) socket.close()
    if (this.stopped) return
    this.options.onStatus('reconnecting')
    if (!opened) {
      this.failuresBeforeOpen += 1
      if (this.options.checkAccess && this.failuresBeforeOpen % 3 === 0) {
        void this.options.checkAccess().then((reason) => {
          if (reason === null || this.stopped || this.socket !== null) return
          this.stop()
          this.options.onStatus('closed', reason)
        })
      }
    }
    const delay = backoffDelay(this.attempt, this.options.backoffBaseMs, this.options.backoffMaxMs)
    this.attempt += 1
    this.reconnectTimer = setTimeout(() => void this.connect(), delay)
  }

  private clearPing(): void {
    if (this.pingTimer !== null) clearInterval(this.pingTimer)
    this.pingTimer = null
    if (this.pongTimer !== null) clearTimeout(this.pongTimer)
    this.pongTimer = null
  }
}

/**
 * Turns a stream of local edits into typing on/off messages: on at the first edit (and again
 * every few seconds while typing, since the server turns it off by itself after 6 s), off after
 * a pause.
 */
export class TypingReporter {
  private typing = false
  private lastAnnounced = 0
  private stopTimer: ReturnType<typeof setTimeout> | null = null

  constructor(
    private readonly announce: (typing: boolean) => void,
    private readonly pauseMs = 2_500,
    private readonly renewMs = 4_000,
    private readonly now: () => number = Date.now,
  ) {}

  edited(): void {
    const now = this.now()
    if (!this.typing || now - this.lastAnnounced >= this.renewMs) {
      this.typing = true
      this.lastAnnounced = now
      this.announce(true)
    }
    if (this.stopTimer !== null) clearTimeout(this.stopTimer)
    this.stopTimer = setTimeout(() => this.stop(), this.pauseMs)
  }

  stop(): void {
    if (this.stopTimer !== null) clearTimeout(this.stopTimer)
    this.stopTimer = null
    if (!this.typing) return
    this.typing = false
    this.announce(false)
  }
}
