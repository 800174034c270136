// Knows whether this tab's edits are durable on the server. With `?ack=1` the server answers
// `100, n` when the first n update-bearing messages of the connection are stored; each such
// message is tagged with the local edit count at the time it was sent, so an acknowledgement
// tells which local edits are saved.

import { isUpdateBearing } from './protocol'

export class SaveTracker {
  /** Local edits made so far (any origin but the provider). */
  private localVersion = 0
  /** The highest local version known to be durable. */
  private savedVersion = 0
  /** For each update-bearing message sent on the current connection, the local version it carried. */
  private sentVersions: number[] = []
  private acknowledged = 0
  /** The server refused an edit: this copy differs from the server's until it is reloaded. */
  private diverged = false
  private readonly listeners = new Set<() => void>()

  localChange(): void {
    this.localVersion += 1
    this.notify()
  }

  /** A new connection: the server counts its messages from zero again. */
  connectionOpened(): void {
    this.sentVersions = []
    this.acknowledged = 0
  }

  messageSent(message: Uint8Array): void {
    if (isUpdateBearing(message)) this.sentVersions.push(this.localVersion)
  }

  /** The server's count of this connection's stored messages. */
  savedThrough(count: number): void {
    const upTo = Math.min(count, this.sentVersions.length)
    for (let index = this.acknowledged; index < upTo; index++) {
      this.savedVersion = Math.max(this.savedVersion, this.sentVersions[index])
    }
    this.acknowledged = Math.max(this.acknowledged, upTo)
    this.notify()
  }

  /**
   * The server refused one of the sent edits. Its acknowledgements count stored messages only,
   * so they no longer say which local edits are saved: from now on this copy counts as unsaved.
   */
  refused(): void {
    this.diverged = true
    this.notify()
  }

  get hasUnsavedEdits(): boolean {
    return this.diverged || this.localVersion > this.savedVersion
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private notify(): void {
    for (const listener of this.listeners) listener()
  }
}

/** A WebSocket class whose `send` reports each binary message first, for y-websocket's `WebSocketPolyfill`. */
export function reportingWebSocket(base: typeof WebSocket, onOpen: () => void, onSend: (message: Uint8Array) => void): typeof WebSocket {
  return class ReportingWebSocket extends base {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols)
      this.addEventListener('open', onOpen)
    }

    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      if (data instanceof Uint8Array) onSend(data)
      else if (data instanceof ArrayBuffer) onSend(new Uint8Array(data))
      super.send(data)
    }
  }
}
