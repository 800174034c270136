// The live side of the open room, fed by its `/ws/rooms` socket: who is here and on which file,
// who is typing, and the chat.

import { create } from 'zustand'
import type { ChatMessage, PresenceUser } from '../api/types'
import { mergeChat, type RoomServerMessage } from '../collab/protocol'
import type { RoomConnectionStatus } from '../collab/roomConnection'

export interface RoomLiveState {
  roomId: string | null
  status: RoomConnectionStatus
  closedReason: string | null
  presence: PresenceUser[]
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
    case 'presence':
      // Snapshots carry each user's typing state too; between them, typing events update it.
      return { presence: message.users }
    case 'typing':
      return {
        presence: state.presence.map((user) =>
          user.user_id === message.user_id ? { ...user, typing: message.typing, file_id: message.file_id ?? user.file_id } : user,
        ),
      }
    case 'error':
      return { chatError: message.message, chatErrorCount: state.chatErrorCount + 1 }
    case 'pong':
    case 'file_changed':
      return {}
  }
}
