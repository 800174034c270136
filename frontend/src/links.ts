// The app's own links: where to go after sign-in, and what an invite link carries.

/** Only same-site paths are followed after sign-in, never another origin. */
export function safeNextPath(next: string | null): string {
  // Browsers drop tabs and line breaks from URLs (`/\t/evil.example` becomes `//evil.example`),
  // so any control character, space or backslash disqualifies the path outright.
  if (next === null || !next.startsWith('/') || /[\u0000-\u0020\u007f\\]/.test(next)) return '/'
  if (next.startsWith('//')) return '/'
  try {
    const base = 'http://codesync.invalid'
    return new URL(next, base).origin === base ? next : '/'
  } catch {
    return '/'
  }
}

/** The code itself, or the code at the end of a pasted invite link (`…/join/CODE`). */
export function inviteCodeFromInput(input: string): string {
  const trimmed = input.trim()
  const match = /\/join\/([^/?#\s]+)\/?(?:[?#].*)?$/.exec(trimmed)
  if (!match) return trimmed
  try {
    return decodeURIComponent(match[1])
  } catch {
    return match[1]
  }
}

export function inviteLink(origin: string, inviteCode: string): string {
  return `${origin}/join/${encodeURIComponent(inviteCode)}`
}
