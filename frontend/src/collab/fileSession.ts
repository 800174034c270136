// One open file: its Yjs document, the stock y-websocket provider on `/ws/files`, the awareness
// state that carries this user's cursor, and the connection and save state the UI shows.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as decoding from 'lib0/decoding'
import { MESSAGE_AUTH, MESSAGE_SAVED } from './protocol'
import { SaveTracker, reportingWebSocket } from './saveTracker'

export type ConnectionStatus = 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'closed'

export interface FileConnectionState {
  status: ConnectionStatus
  /** The first sync with the server is done: the editor shows the file's real content. */
  synced: boolean
  hasUnsavedEdits: boolean
  /** Why the server ended the session for good (file deleted, removed from the room). */
  closedReason: string | null
  /**
   * The latest edit the server refused (made a viewer meanwhile, or the file at its size limit),
   * with a count so that each refusal can be told from the last.
   */
  refusal: { reason: string; count: number } | null
}

/** After this long without a connection the indicator says offline rather than reconnecting. */
const OFFLINE_AFTER_MS = 8_000

export interface FileSessionOptions {
  fileId: string
  /** `ws://host` or `wss://host`. */
  serverUrl: string
  accessToken: string
  user: { id: string; name: string; colour: string }
  /** Called for every edit made in this tab (for the typing indicator). */
  onLocalEdit?: () => void
  /**
   * Asked after connections keep failing before they open: a browser sees a refused upgrade
   * (file deleted, access revoked while away) only as close code 1006. Returns why the file is
   * out of reach, or null to keep retrying.
   */
  checkAccess?: () => Promise<string | null>
  WebSocketImpl?: typeof WebSocket
}

export class FileSession {
  readonly doc = new Y.Doc()
  readonly text = this.doc.getText('content')
  readonly provider: WebsocketProvider
  private readonly tracker = new SaveTracker()
  private state: FileConnectionState = {
    status: 'connecting',
    synced: false,
    hasUnsavedEdits: false,
    closedReason: null,
    refusal: null,
  }
  private readonly listeners = new Set<() => void>()
  private disconnectedSince: number | null = null
  private offlineTimer: ReturnType<typeof setTimeout> | null = null
  private destroyed = false
  private openedSinceLastClose = false
  private failuresBeforeOpen = 0

  constructor(options: FileSessionOptions) {
    // Registered before the provider's own listener, so an edit is counted before it is sent.
    this.doc.on('update', (_update: Uint8Array, origin: unknown) => {
      if (origin === this.provider) return
      this.tracker.localChange()
      options.onLocalEdit?.()
    })
    const base = options.WebSocketImpl ?? WebSocket
    const WebSocketImpl = reportingWebSocket(
      base,
      () => {
        this.openedSinceLastClose = true
        this.failuresBeforeOpen = 0
        this.tracker.connectionOpened()
      },
      (message) => this.tracker.messageSent(message),
    )
    this.provider = new WebsocketProvider(`${options.serverUrl}/ws/files`, options.fileId, this.doc, {
      params: { token: options.accessToken, ack: '1' },
      WebSocketPolyfill: WebSocketImpl,
      // Each tab talks to the server itself, so "saved" means durable on the server.
      disableBc: true,
      maxBackoffTime: 5_000,
      // 4404: the file was deleted; 1008: removed from the room (or a message the server
      // refused); 1009: a message over the server's limit, which a retry would only send again.
      shouldReconnect: (event) => !(event.code === 1008 || event.code === 1009 || (event.code >= 4400 && event.code < 4500)),
    })
    this.provider.messageHandlers[MESSAGE_SAVED] = (_encoder, decoder) => {
      this.tracker.savedThrough(decoding.readVarUint(decoder))
    }
    // y-protocols' auth message: the server refused an update (the stock handler only logs it).
    this.provider.messageHandlers[MESSAGE_AUTH] = (_encoder, decoder) => {
      const reason = decoding.readVarUint(decoder) === 0 ? decoding.readVarString(decoder) : 'the server refused the edit'
      this.tracker.refused()
      this.update({ refusal: { reason, count: (this.state.refusal?.count ?? 0) + 1 } })
    }
    this.provider.awareness.setLocalStateField('user', {
      id: options.user.id,
      name: options.user.name,
      color: options.user.colour,
    })
    this.provider.on('status', ({ status }) => this.onStatus(status))
    this.provider.on('sync', (synced: boolean) => this.update({ synced: synced || this.state.synced }))
    this.provider.on('closed', ({ code, reason }) => this.update({ status: 'closed', closedReason: closeReason(code, reason) }))
    this.provider.on('connection-close', () => {
      if (this.openedSinceLastClose) {
        this.openedSinceLastClose = false
        return
      }
      this.failuresBeforeOpen += 1
      if (options.checkAccess && this.failuresBeforeOpen % 3 === 0) void this.checkAccess(options.checkAccess)
    })
    this.tracker.subscribe(() => this.update({ hasUnsavedEdits: this.tracker.hasUnsavedEdits }))
    // A first connection that never succeeds also ends up "offline".
    this.armOfflineTimer()
  }

  get connectionState(): FileConnectionState {
    return this.state
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** A fresh access token, used at the next reconnection (y-websocket reads `params` at each connect). */
  setAccessToken(token: string): void {
    this.provider.params.token = token
  }

  destroy(): void {
    if (this.destroyed) return
    this.destroyed = true
    this.listeners.clear()
    this.provider.destroy()
    this.doc.destroy()
    // After the provider: its last status event must not arm the timer again.
    if (this.offlineTimer !== null) clearTimeout(this.offlineTimer)
  }

  private async checkAccess(check: () => Promise<string | null>): Promise<void> {
    const reason = await check().catch(() => null)
    if (reason === null || this.destroyed || this.state.status === 'connected') return
    this.provider.disconnect()
    this.update({ status: 'closed', closedReason: reason })
  }

  private onStatus(status: 'connected' | 'disconnected' | 'connecting'): void {
    if (this.destroyed || this.state.status === 'closed') return
    if (status === 'connected') {
      this.disconnectedSince = null
      if (this.offlineTimer !== null) clearTimeout(this.offlineTimer)
      this.offlineTimer = null
      this.update({ status: 'connected' })
      return
    }
    this.armOfflineTimer()
    if (this.state.status === 'connected') this.update({ status: 'reconnecting' })
  }

  private armOfflineTimer(): void {
    if (this.disconnectedSince !== null) return
    this.disconnectedSince = Date.now()
    this.offlineTimer = setTimeout(() => {
      if (this.disconnectedSince !== null && this.state.status !== 'closed') this.update({ status: 'offline' })
    }, OFFLINE_AFTER_MS)
  }

  private update(change: Partial<FileConnectionState>): void {
    const next = { ...this.state, ...change }
    if (
      next.status === this.state.status &&
      next.synced === this.state.synced &&
      next.hasUnsavedEdits === this.state.hasUnsavedEdits &&
      next.closedReason === this.state.closedReason &&
      next.refusal === this.state.refusal
    ) {
      return
    }
    this.state = next
    for (const listener of this.listeners) listener()
  }
}

/** What the editor says when the server ended the session for good. */
export function closeReason(code: number, reason: string): string {
  if (code === 4404) return 'This file was deleted.'
  if (code === 1009) return 'An edit was too large for the server (the limit is 1 MiB per message). Reload the file to continue.'
  return reason ? `${reason[0].toUpperCase()}${reason.slice(1)}.` : `The server closed the connection (${code}).`
}

/** `ws://` or `wss://` for the page's own origin. */
export function webSocketBase(location: Pick<Location, 'protocol' | 'host'>): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}`
}
