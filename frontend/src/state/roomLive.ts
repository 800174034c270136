// The live side of the open room, fed by its `/ws/rooms` socket: who is here and on which file,
// who is typing, and the chat.

import { create } from 'zustand'
import type { ChatMessage, PresenceUser } from '../api/types'
import { mergeChat, type RoomServerMessage } from '../collab/protocol'
import type { RoomConnectionStatus } from '../collab/roomConnection'

export interface TypingEntry {
  username: string
  fileId: string | null
}

export interface RoomLiveState {
  roomId: string | null
  status: RoomConnectionStatus
  closedReason: string | null
  presence: PresenceUser[]
  typing: Record<string, TypingEntry>
  chat: ChatMessage[]
  /** The latest refusal from the server (rate limited, too long), shown beside the chat box. */
  chatError: string | null
  /** Counts refusals, so the same refusal twice is still two. */
  chatErrorCount: number
}

/** A room's live state before its socket has said anything. */
export const initialRoomLive: RoomLiveState = {
  roomId: null,
  status: 'connecting',
  closedReason: null,
  presence: [],
  typing: {},
  chat: [],
  chatError: null,
  chatErrorCount: 0,
}

export const useRoomLive = create<RoomLiveState>(() => initialRoomLive)

export function resetRoomLive(roomId: string | null): void {
  useRoomLive.setState({ ...initialRoomLive, roomId })
}

/** Applies one server message; pure, so it is tested without a socket. */
export function reduceRoomMessage(state: RoomLiveState, message: RoomServerMessage): Partial<RoomLiveState> {
  switch (message.type) {
    case 'history':
      return { chat: mergeChat(state.chat, message.messages) }
    case 'chat':
      return { chat: mergeChat(state.chat, [message.message]), chatError: null }
    case 'presence': {
      // Whoever left is no longer typing.
      const present = new Set(message.users.map((user) => user.user_id))
      const typing = Object.fromEntries(Object.entries(state.typing).filter(([userId]) => present.has(userId)))
      return { presence: message.users, typing }
    }
    case 'typing': {
      const typing = { ...state.typing }
      if (message.typing) typing[message.user_id] = { username: message.username, fileId: message.file_id }
      else delete typing[message.user_id]
      return { typing }
    }
    case 'error':
      return { chatError: message.message, chatErrorCount: state.chatErrorCount + 1 }
    case 'pong':
      return {}
  }
}
