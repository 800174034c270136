// Pure helpers for the two WebSocket protocols (docs/protocol.md): parsing what `/ws/rooms`
// sends, recognising y-protocols messages, and the names the server gives colours.

import type { ChatMessage, PresenceUser } from '../api/types'

export type RoomServerMessage =
  | { type: 'history'; messages: ChatMessage[] }
  | { type: 'presence'; users: PresenceUser[] }
  | { type: 'chat'; message: ChatMessage }
  | { type: 'typing'; user_id: string; username: string; file_id: string | null; typing: boolean }
  | { type: 'error'; code: string; message: string }
  | { type: 'file_changed'; change: string; file_id: string | null; filename: string | null; old_filename: string | null }
  | { type: 'pong' }

export type RoomClientMessage =
  { type: 'focus'; file_id: string | null } | { type: 'typing'; typing: boolean } | { type: 'chat'; text: string } | { type: 'ping' }

type Json = Record<string, unknown>

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
const isString = (value: unknown): value is string => typeof value === 'string'
const isNullableString = (value: unknown): value is string | null => value === null || typeof value === 'string'

function chatMessage(value: unknown): ChatMessage | null {
  if (!isObject(value)) return null
  const { id, room_id, user_id, username, text, sent_at } = value
  if (![id, room_id, user_id, username, text, sent_at].every(isString)) return null
  return { id, room_id, user_id, username, text, sent_at } as ChatMessage
}

function presenceUser(value: unknown): PresenceUser | null {
  if (!isObject(value)) return null
  const { user_id, username, color, file_id, typing, last_seen } = value
  if (!isString(user_id) || !isString(username) || !isString(color) || !isNullableString(file_id)) return null
  return {
    user_id,
    username,
    color: isCssHexColour(color) ? color : colourForUser(user_id),
    file_id,
    typing: typing === true,
    last_seen: isString(last_seen) ? last_seen : '',
  }
}

function allOrNothing<T>(values: unknown, parse: (value: unknown) => T | null): T[] | null {
  if (!Array.isArray(values)) return null
  const parsed: T[] = []
  for (const value of values) {
    const item = parse(value)
    if (item === null) return null
    parsed.push(item)
  }
  return parsed
}

/** A message from `/ws/rooms`, checked field by field; `null` for anything malformed or unknown. */
export function parseRoomServerMessage(text: string): RoomServerMessage | null {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return null
  }
  if (!isObject(value) || !isString(value.type)) return null
  switch (value.type) {
    case 'history': {
      const messages = allOrNothing(value.messages, chatMessage)
      return messages === null ? null : { type: 'history', messages }
    }
    case 'presence': {
      const users = allOrNothing(value.users, presenceUser)
      return users === null ? null : { type: 'presence', users }
    }
    case 'chat': {
      const message = chatMessage(value.message)
      return message === null ? null : { type: 'chat', message }
    }
    case 'file_changed': {
      const { change, file_id, filename, old_filename } = value
      if (!isString(change) || !isNullableString(file_id) || !isNullableString(filename) || !isNullableString(old_filename)) return null
      return { type: 'file_changed', change, file_id, filename, old_filename }
    }
    case 'typing': {
      const { user_id, username, file_id, typing } = value
      if (!isString(user_id) || !isString(username) || !isNullableString(file_id) || typeof typing !== 'boolean') return null
      return { type: 'typing', user_id, username, file_id, typing }
    }
    case 'error':
      return isString(value.code) && isString(value.message) ? { type: 'error', code: value.code, message: value.message } : null
    case 'pong':
      return { type: 'pong' }
    default:
      return null
  }
}

/** Merges chat messages by id, oldest first: a reconnect replays history the client already has. */
export function mergeChat(existing: ChatMessage[], incoming: ChatMessage[], limit = 500): ChatMessage[] {
  const byId = new Map(existing.map((message) => [message.id, message]))
  for (const message of incoming) byId.set(message.id, message)
  const merged = [...byId.values()].sort((a, b) => (a.sent_at === b.sent_at ? compareIds(a.id, b.id) : a.sent_at < b.sent_at ? -1 : 1))
  return merged.length > limit ? merged.slice(merged.length - limit) : merged
}

function compareIds(a: string, b: string): number {
  return a.length === b.length ? (a < b ? -1 : a > b ? 1 : 0) : a.length - b.length
}

/** The y-protocols messages that carry document content: sync step 2 and update (`0,1` and `0,2`). */
export function isUpdateBearing(message: Uint8Array): boolean {
  return message.length >= 2 && message[0] === 0 && (message[1] === 1 || message[1] === 2)
}

/** The acknowledgement the server sends with `?ack=1`: `varUint 100, varUint n`. */
export const MESSAGE_SAVED = 100

/** y-protocols' auth message; the server sends it when it refuses a write. */
export const MESSAGE_AUTH = 2

// The server's palette and hash (services/presence/src/lib.rs, `colour_for`): every member sees
// the same colour for the same person, in presence lists and in editor cursors alike.
const PALETTE = [
  '#e06c75',
  '#61afef',
  '#98c379',
  '#e5c07b',
  '#c678dd',
  '#56b6c2',
  '#d19a66',
  '#be5046',
  '#7f9cf5',
  '#f472b6',
  '#34d399',
  '#fbbf24',
]

export function colourForUser(userId: string): string {
  const bytes = new TextEncoder().encode(userId)
  let hash = 0xcbf29ce484222325n
  for (const byte of bytes) hash = BigInt.asUintN(64, (hash ^ BigInt(byte)) * 0x100000001b3n)
  return PALETTE[Number(hash % BigInt(PALETTE.length))]
}

export function isCssHexColour(value: string): boolean {
  return /^#[0-9a-fA-F]{6}$/.test(value)
}

/** A CSS string literal for `content:`; names come from other users, so nothing in them may end the rule. */
export function cssString(text: string): string {
  let escaped = ''
  for (const character of text.slice(0, 64)) {
    const code = character.codePointAt(0) ?? 0
    if (character === '"' || character === '\\' || code < 0x20 || code === 0x7f || character === '<' || character === '>') {
      escaped += `\\${code.toString(16)} `
    } else {
      escaped += character
    }
  }
  return `"${escaped}"`
}

export interface RemoteCursor {
  clientId: number
  name: string
  colour: string
}

/** The style rules that colour y-monaco's selection decorations and label each cursor with its user's name. */
export function remoteCursorCss(cursors: RemoteCursor[]): string {
  return cursors
    .filter((cursor) => Number.isSafeInteger(cursor.clientId) && cursor.clientId >= 0)
    .map(({ clientId, name, colour }) => {
      const safeColour = isCssHexColour(colour) ? colour : '#7f9cf5'
      return [
        `.yRemoteSelection-${clientId} { background-color: ${safeColour}40; }`,
        `.yRemoteSelectionHead-${clientId} { border-left: 2px solid ${safeColour}; }`,
        `.yRemoteSelectionHead-${clientId}::after { content: ${cssString(name)}; background-color: ${safeColour}; }`,
      ].join('\n')
    })
    .join('\n')
}
