import { afterEach, describe, expect, it, vi } from 'vitest'
import type { FileConnectionState, FileSession, FileSessionOptions } from './fileSession'
import { anyUnsavedEdits, endAllSessions, poolFor } from './sessionPool'

/** A FileSession stand-in whose state the test sets. */
class FakeSession {
  state: FileConnectionState = { status: 'connected', synced: true, hasUnsavedEdits: false, closedReason: null, refusal: null }
  destroyed = false
  private readonly listeners = new Set<() => void>()
  constructor(readonly fileId: string) {}
  get connectionState() {
    return this.state
  }
  subscribe(listener: () => void) {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
  set(change: Partial<FileConnectionState>) {
    this.state = { ...this.state, ...change }
    for (const listener of [...this.listeners]) listener()
  }
  tokens: string[] = []
  setAccessToken(token: string) {
    this.tokens.push(token)
  }
  destroy() {
    this.destroyed = true
  }
}

const created: FakeSession[] = []
function options(roomId: string, canWrite = true) {
  return {
    roomId,
    user: { id: 'u1', name: 'ann', colour: '#61afef' },
    canWrite,
    accessToken: () => 'token',
    createSession: (session: FileSessionOptions) => {
      const fake = new FakeSession(session.fileId)
      created.push(fake)
      return fake as unknown as FileSession
    },
  }
}

vi.stubGlobal('window', { location: { protocol: 'http:', host: 'localhost' } })

afterEach(() => {
  endAllSessions()
  created.length = 0
})

describe('session pools', () => {
  it('leaving a room ends saved sessions at once and the others once they are saved', () => {
    const pool = poolFor(options('room-1'))
    pool.show(() => {})
    const saved = pool.get('a') as unknown as FakeSession
    const unsaved = pool.get('b') as unknown as FakeSession
    unsaved.set({ hasUnsavedEdits: true, status: 'offline' })
    expect(anyUnsavedEdits()).toBe(true)

    pool.hide()
    expect(saved.destroyed).toBe(true)
    expect(unsaved.destroyed).toBe(false)
    unsaved.set({ status: 'connected' })
    expect(unsaved.destroyed).toBe(false)
    unsaved.set({ hasUnsavedEdits: false })
    expect(unsaved.destroyed).toBe(true)
    expect(anyUnsavedEdits()).toBe(false)
  })

  it('coming back before the save finds the same session, edits and all', () => {
    const pool = poolFor(options('room-2'))
    pool.show(() => {})
    const unsaved = pool.get('a') as unknown as FakeSession
    unsaved.set({ hasUnsavedEdits: true })
    pool.hide()
    const again = poolFor(options('room-2'))
    again.show(() => {})
    expect(again).toBe(pool)
    expect(again.get('a')).toBe(unsaved as unknown as FileSession)
    unsaved.set({ hasUnsavedEdits: false })
    expect(unsaved.destroyed).toBe(false) // shown again: kept
  })

  it('a change of role starts over from the server', () => {
    const writer = poolFor(options('room-3', true))
    writer.show(() => {})
    const session = writer.get('a') as unknown as FakeSession
    const reader = poolFor(options('room-3', false))
    expect(reader).not.toBe(writer)
    expect(session.destroyed).toBe(true)
  })

  it('hands refreshed tokens to its own user’s sessions only', () => {
    const pool = poolFor(options('room-5'))
    pool.show(() => {})
    const session = pool.get('a') as unknown as FakeSession
    const tokenFor = (sub: string) => `x.${btoa(JSON.stringify({ sub, exp: 1 }))}.y`
    pool.setAccessToken(tokenFor('u1'))
    pool.setAccessToken(tokenFor('someone-else'))
    expect(session.tokens).toEqual([tokenFor('u1')])
  })

  it('sessions the server refused or closed are not waited for', () => {
    const pool = poolFor(options('room-4'))
    pool.show(() => {})
    const refused = pool.get('a') as unknown as FakeSession
    refused.set({ hasUnsavedEdits: true, refusal: { reason: 'size limit', count: 1 } })
    const closed = pool.get('b') as unknown as FakeSession
    closed.set({ hasUnsavedEdits: true, status: 'closed', closedReason: 'This file was deleted.' })
    pool.hide()
    expect(refused.destroyed && closed.destroyed).toBe(true)
  })

  it('a refusal that arrives after the page left ends the wait', () => {
    const pool = poolFor(options('room-6'))
    pool.show(() => {})
    const session = pool.get('a') as unknown as FakeSession
    session.set({ hasUnsavedEdits: true })
    pool.hide()
    expect(session.destroyed).toBe(false)
    session.set({ refusal: { reason: 'size limit', count: 1 } })
    expect(session.destroyed).toBe(true)
    expect(anyUnsavedEdits()).toBe(false)
  })
})
