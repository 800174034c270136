import { describe, expect, it } from 'vitest'
import { colourForUser, cssString, isUpdateBearing, mergeChat, parseRoomServerMessage, remoteCursorCss } from './protocol'
import type { ChatMessage } from '../api/types'

const chat = (id: string, sent_at: string, text = id): ChatMessage => ({ id, room_id: 'r', user_id: 'u', username: 'ann', text, sent_at })

describe('room socket messages', () => {
  it('parses each message the server sends', () => {
    expect(
      parseRoomServerMessage(
        '{"type":"history","messages":[{"id":"1","room_id":"r","user_id":"u","username":"ann","text":"hi","sent_at":"2026-01-01T00:00:00Z"}]}',
      ),
    ).toEqual({
      type: 'history',
      messages: [chat('1', '2026-01-01T00:00:00Z', 'hi')],
    })
    expect(
      parseRoomServerMessage(
        '{"type":"presence","users":[{"user_id":"u","username":"ann","color":"#61afef","file_id":null,"typing":false,"last_seen":"x"}]}',
      ),
    ).toEqual({
      type: 'presence',
      users: [{ user_id: 'u', username: 'ann', color: '#61afef', file_id: null, typing: false, last_seen: 'x' }],
    })
    expect(parseRoomServerMessage('{"type":"typing","user_id":"u","username":"ann","file_id":"f","typing":true}')).toEqual({
      type: 'typing',
      user_id: 'u',
      username: 'ann',
      file_id: 'f',
      typing: true,
    })
    expect(parseRoomServerMessage('{"type":"error","code":"rate_limited","message":"slow down"}')).toEqual({
      type: 'error',
      code: 'rate_limited',
      message: 'slow down',
    })
    expect(parseRoomServerMessage('{"type":"pong"}')).toEqual({ type: 'pong' })
  })

  it('rejects malformed or unknown messages instead of half-reading them', () => {
    for (const bad of [
      'not json',
      'null',
      '[]',
      '{"type":"unknown"}',
      '{"type":"chat"}',
      '{"type":"chat","message":{"id":1}}',
      '{"type":"history","messages":[{"id":"1"}]}',
      '{"type":"presence","users":"everyone"}',
      '{"type":"typing","user_id":"u","username":"ann","file_id":3,"typing":true}',
    ]) {
      expect(parseRoomServerMessage(bad), bad).toBeNull()
    }
  })

  it('replaces a colour that is not a plain hex colour (it ends up in CSS)', () => {
    const message = parseRoomServerMessage(
      '{"type":"presence","users":[{"user_id":"alice","username":"a","color":"red;}body{display:none","file_id":null}]}',
    )
    expect(message?.type === 'presence' && message.users[0].color).toBe(colourForUser('alice'))
  })
})

describe('chat history', () => {
  it('merges replays by id, oldest first, and keeps the newest when over the limit', () => {
    const first = mergeChat([], [chat('2', '2026-01-01T00:00:02Z'), chat('1', '2026-01-01T00:00:01Z')])
    expect(first.map((message) => message.id)).toEqual(['1', '2'])
    const again = mergeChat(first, [chat('2', '2026-01-01T00:00:02Z'), chat('3', '2026-01-01T00:00:03Z')])
    expect(again.map((message) => message.id)).toEqual(['1', '2', '3'])
    expect(mergeChat(again, [], 2).map((message) => message.id)).toEqual(['2', '3'])
  })
})

describe('y-protocols helpers', () => {
  it('knows which messages carry document content', () => {
    expect(isUpdateBearing(new Uint8Array([0, 1, 5]))).toBe(true) // sync step 2
    expect(isUpdateBearing(new Uint8Array([0, 2, 5]))).toBe(true) // update
    expect(isUpdateBearing(new Uint8Array([0, 0, 5]))).toBe(false) // sync step 1
    expect(isUpdateBearing(new Uint8Array([1, 2]))).toBe(false) // awareness
    expect(isUpdateBearing(new Uint8Array([0]))).toBe(false)
  })

  it('gives every user the colour the server gives them (services/presence colour_for)', () => {
    // The same pairs are asserted in services/presence/src/lib.rs.
    expect(colourForUser('alice')).toBe('#fbbf24')
    expect(colourForUser('0197c1d2-aaaa-7bbb-8ccc-123456789abc')).toBe('#56b6c2')
  })
})

describe('remote cursor styles', () => {
  it('quote names so no name can end the rule', () => {
    expect(cssString('ann')).toBe('"ann"')
    expect(cssString('a"}body{x')).toBe('"a\\22 }body{x"')
    expect(cssString('back\\slash\n')).toBe('"back\\5c slash\\a "')
    expect(cssString('x'.repeat(100))).toHaveLength(66)
  })

  it('colours each client and refuses colours and ids that are not plain values', () => {
    const css = remoteCursorCss([
      { clientId: 42, name: 'ann', colour: '#61afef' },
      { clientId: 7, name: 'bob', colour: 'red;} * {display:none' },
      { clientId: -1, name: 'evil', colour: '#000000' },
    ])
    expect(css).toContain('.yRemoteSelection-42 { background-color: #61afef40; }')
    expect(css).toContain('.yRemoteSelectionHead-42::after { content: "ann"; background-color: #61afef; }')
    expect(css).toContain('.yRemoteSelectionHead-7 { border-left: 2px solid #7f9cf5; }')
    expect(css).not.toContain('display:none')
    expect(css).not.toContain('evil')
  })
})
