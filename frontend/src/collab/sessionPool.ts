// The file sessions of a room's open tabs. A background tab keeps its connection, so switching
// tabs is instant and edits made offline survive a tab switch. Pools outlive the room page:
// leaving a room (for the room list, another room) never throws away edits the server has not
// stored yet; those sessions stay connected until their edits are saved, and come back if the
// user returns first.

import { FileSession, webSocketBase, type FileSessionOptions } from './fileSession'
import { tokenSubject } from '../auth/tokens'

export interface PoolUser {
  id: string
  name: string
  colour: string
}

export interface PoolOptions {
  roomId: string
  user: PoolUser
  /** Whether this user may write; a pool is never reused across a change of role. */
  canWrite: boolean
  /** Why a file is out of reach (deleted, access revoked), or null; see FileSessionOptions. */
  checkAccess?: (fileId: string) => Promise<string | null>
  accessToken: () => string | null
  createSession?: (options: FileSessionOptions) => FileSession
}

export class SessionPool {
  private readonly sessions = new Map<string, FileSession>()
  private readonly waitingForSave = new Map<string, () => void>()
  private shown = false
  /** Set by the page that shows the pool (the typing indicator); nothing while none does. */
  private onLocalEdit: (fileId: string) => void = () => {}

  constructor(private readonly options: PoolOptions) {}

  get key(): string {
    return poolKey(this.options.roomId, this.options.user.id, this.options.canWrite)
  }

  get roomId(): string {
    return this.options.roomId
  }

  /** A room page shows this pool: keep every session, including those waiting to be saved. */
  show(onLocalEdit: (fileId: string) => void): void {
    this.shown = true
    this.onLocalEdit = onLocalEdit
    for (const stop of this.waitingForSave.values()) stop()
    this.waitingForSave.clear()
  }

  /** The room page is gone: end saved sessions now, the others once the server has their edits. */
  hide(): void {
    this.shown = false
    this.onLocalEdit = () => {}
    for (const [fileId, session] of this.sessions) {
      const state = session.connectionState
      // Nothing to wait for: saved, closed for good, or refused by the server.
      if (!state.hasUnsavedEdits || state.status === 'closed' || state.refusal !== null) {
        this.release(fileId)
        continue
      }
      const unsubscribe = session.subscribe(() => {
        const state = session.connectionState
        const canStillSave = state.hasUnsavedEdits && state.status !== 'closed' && state.refusal === null
        if (this.shown || canStillSave) return
        this.waitingForSave.delete(fileId)
        unsubscribe()
        this.release(fileId)
      })
      this.waitingForSave.set(fileId, unsubscribe)
    }
    if (this.sessions.size === 0) pools.delete(this.key)
  }

  get(fileId: string): FileSession | null {
    const existing = this.sessions.get(fileId)
    if (existing) return existing
    const token = this.options.accessToken()
    if (token === null) return null
    const options: FileSessionOptions = {
      fileId,
      serverUrl: webSocketBase(window.location),
      accessToken: token,
      user: this.options.user,
      onLocalEdit: () => this.onLocalEdit(fileId),
      checkAccess: this.options.checkAccess ? () => this.options.checkAccess!(fileId) : undefined,
    }
    const session = this.options.createSession ? this.options.createSession(options) : new FileSession(options)
    this.sessions.set(fileId, session)
    return session
  }

  peek(fileId: string): FileSession | undefined {
    return this.sessions.get(fileId)
  }

  /** Ends one session (its tab closed, its file deleted, or its edits saved after the page left). */
  release(fileId: string): void {
    this.waitingForSave.get(fileId)?.()
    this.waitingForSave.delete(fileId)
    this.sessions.get(fileId)?.destroy()
    this.sessions.delete(fileId)
    if (!this.shown && this.sessions.size === 0) pools.delete(this.key)
  }

  /** A refreshed token for the next reconnections; never another user's (a sign-in in another tab). */
  setAccessToken(token: string): void {
    if (tokenSubject(token) !== this.options.user.id) return
    for (const session of this.sessions.values()) session.setAccessToken(token)
  }

  unsavedFileIds(): string[] {
    return [...this.sessions].filter(([, session]) => session.connectionState.hasUnsavedEdits).map(([fileId]) => fileId)
  }

  destroy(): void {
    for (const fileId of [...this.sessions.keys()]) this.release(fileId)
    pools.delete(this.key)
  }
}

const pools = new Map<string, SessionPool>()

function poolKey(roomId: string, userId: string, canWrite: boolean): string {
  return `${roomId}\u0000${userId}\u0000${canWrite ? 'write' : 'read'}`
}

/**
 * The pool for this room, user and role: the one kept from an earlier visit if any. Pools of the
 * same room for another user or role are ended: their edits could no longer be stored anyway.
 */
export function poolFor(options: PoolOptions): SessionPool {
  const key = poolKey(options.roomId, options.user.id, options.canWrite)
  const existing = pools.get(key)
  if (existing) return existing
  for (const pool of [...pools.values()]) {
    if (pool.roomId === options.roomId) pool.destroy()
  }
  const pool = new SessionPool(options)
  pools.set(key, pool)
  return pool
}

/** Whether any open or recently left file has edits the server has not stored. */
export function anyUnsavedEdits(): boolean {
  return [...pools.values()].some((pool) => pool.unsavedFileIds().length > 0)
}

/** Sign-out from this tab, confirmed by the user: every session ends. */
export function endAllSessions(): void {
  for (const pool of [...pools.values()]) pool.destroy()
}

/**
 * The session ended elsewhere (another tab signed out, or the refresh token was refused): no
 * page shows the pools any more. Saved sessions end; unsaved ones keep their open connections
 * (the server keeps authorising an open connection) until their edits are stored.
 */
export function hideAllPools(): void {
  for (const pool of [...pools.values()]) pool.hide()
}

export function setAccessTokenEverywhere(token: string): void {
  for (const pool of pools.values()) pool.setAccessToken(token)
}

/** Registered once: closing or reloading the browser tab with unsaved edits asks first. */
export function warnBeforeUnloadWithUnsavedEdits(): () => void {
  const onBeforeUnload = (event: BeforeUnloadEvent) => {
    if (!anyUnsavedEdits()) return
    event.preventDefault()
    event.returnValue = ''
  }
  window.addEventListener('beforeunload', onBeforeUnload)
  return () => window.removeEventListener('beforeunload', onBeforeUnload)
}
