// The app's own links: where to go after sign-in, and what an invite link carries.

/** Only same-site paths are followed after sign-in, never another origin. */
export function safeNextPath(next: string | null): string {
  if (next === null || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/'
  return next
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
