// The shapes of the REST API and of the room WebSocket; times are RFC 3339 strings.

import type { components } from './schema'

/** The REST API's bodies, generated from docs/openapi.json (`npm run api-types`). */
export type Schemas = components['schemas']

export type Role = NonNullable<Schemas['RoomBody']['my_role']>
export type User = Schemas['UserBody']
export type AuthResponse = Schemas['SessionBody']
export type TokenPair = Schemas['TokenPairBody']
/** `invite_code`: only the owner and editors see it; `my_role`: `null` for non-members. */
export type Room = Schemas['RoomBody']
export type Member = Schemas['MemberBody']
export type FileEntry = Schemas['FileBody']

// What travels over the room WebSocket (docs/protocol.md), which the OpenAPI document does not
// describe.
export interface ChatMessage {
  id: string
  room_id: string
  user_id: string
  username: string
  text: string
  sent_at: string
}

export interface PresenceUser {
  user_id: string
  username: string
  color: string
  file_id: string | null
  typing: boolean
  last_seen: string
}
