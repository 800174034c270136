import { describe, expect, it } from 'vitest'
import { initialRoomLive, reduceRoomMessage, type RoomLiveState } from './roomLive'

const base: RoomLiveState = { ...initialRoomLive, roomId: 'r', status: 'connected' }
const person = (user_id: string, file_id: string | null = null) => ({
  user_id,
  username: user_id,
  color: '#61afef',
  file_id,
  typing: false,
  last_seen: '',
})

describe('reduceRoomMessage', () => {
  it('tracks who types where, and forgets those who left', () => {
    const typists = (state: RoomLiveState) => state.presence.filter((user) => user.typing).map((user) => user.user_id)
    let state: RoomLiveState = { ...base, presence: [person('ann', 'f1'), person('bob', 'f2')] }
    state = { ...state, ...reduceRoomMessage(state, { type: 'typing', user_id: 'ann', username: 'ann', file_id: 'f1', typing: true }) }
    state = { ...state, ...reduceRoomMessage(state, { type: 'typing', user_id: 'bob', username: 'bob', file_id: 'f2', typing: true }) }
    expect(typists(state).sort()).toEqual(['ann', 'bob'])
    state = { ...state, ...reduceRoomMessage(state, { type: 'typing', user_id: 'ann', username: 'ann', file_id: 'f1', typing: false }) }
    expect(typists(state)).toEqual(['bob'])
    state = { ...state, ...reduceRoomMessage(state, { type: 'presence', users: [person('ann', 'f1')] }) }
    expect(typists(state)).toEqual([])
    expect(state.presence.map((user) => user.user_id)).toEqual(['ann'])
  })

  it('adds chat without duplicates and clears the last error on a confirmed message', () => {
    const message = { id: '1', room_id: 'r', user_id: 'ann', username: 'ann', text: 'hi', sent_at: '2026-01-01T00:00:00Z' }
    let state: RoomLiveState = { ...base, ...reduceRoomMessage(base, { type: 'error', code: 'rate_limited', message: 'slow down' }) }
    expect(state.chatError).toBe('slow down')
    state = { ...state, ...reduceRoomMessage(state, { type: 'chat', message }) }
    state = { ...state, ...reduceRoomMessage(state, { type: 'history', messages: [message] }) }
    expect(state.chat).toHaveLength(1)
    expect(state.chatError).toBeNull()
  })
})
