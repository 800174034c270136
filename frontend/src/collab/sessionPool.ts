// The file sessions of a room's open tabs. A background tab keeps its connection, so switching
// tabs is instant and edits made offline survive a tab switch; closing a tab ends its session.

import { FileSession, webSocketBase } from './fileSession'

export interface PoolUser {
  id: string
  name: string
  colour: string
}

export class SessionPool {
  private readonly sessions = new Map<string, FileSession>()

  constructor(
    private readonly user: PoolUser,
    private readonly accessToken: () => string | null,
    private readonly onLocalEdit: (fileId: string) => void,
  ) {}

  get(fileId: string): FileSession | null {
    const existing = this.sessions.get(fileId)
    if (existing) return existing
    const token = this.accessToken()
    if (token === null) return null
    const session = new FileSession({
      fileId,
      serverUrl: webSocketBase(window.location),
      accessToken: token,
      user: this.user,
      onLocalEdit: () => this.onLocalEdit(fileId),
    })
    this.sessions.set(fileId, session)
    return session
  }

  peek(fileId: string): FileSession | undefined {
    return this.sessions.get(fileId)
  }

  release(fileId: string): void {
    this.sessions.get(fileId)?.destroy()
    this.sessions.delete(fileId)
  }

  setAccessToken(token: string): void {
    for (const session of this.sessions.values()) session.setAccessToken(token)
  }

  anyUnsaved(): boolean {
    return [...this.sessions.values()].some((session) => session.connectionState.hasUnsavedEdits)
  }

  destroy(): void {
    for (const session of this.sessions.values()) session.destroy()
    this.sessions.clear()
  }
}
