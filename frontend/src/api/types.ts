// The shapes of the REST API (docs/protocol.md); times are RFC 3339 strings.

export type Role = 'owner' | 'editor' | 'viewer'

export interface User {
  id: string
  username: string
  email: string
  is_admin: boolean
  created_at: string
}

export interface AuthResponse {
  user: User
  access_token: string
  refresh_token: string
}

export interface TokenPair {
  access_token: string
  refresh_token: string
}

export interface Room {
  id: string
  name: string
  description: string
  is_public: boolean
  owner_id: string
  /** Only the owner and editors see it. */
  invite_code: string | null
  /** `null` when the caller is not a member (a public room). */
  my_role: Role | null
  member_count: number
  created_at: string
  updated_at: string
}

export interface Member {
  room_id: string
  user_id: string
  username: string
  role: Role
  joined_at: string
}

export interface FileEntry {
  id: string
  room_id: string
  filename: string
  language: string
  size_bytes: number
  created_by: string
  updated_by: string
  created_at: string
  updated_at: string
  content?: string
}

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
