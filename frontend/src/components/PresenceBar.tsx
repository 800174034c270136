import type { FileEntry, PresenceUser } from '../api/types'
import { Avatar } from './ui'

/** Who is in the room; clicking someone else follows them (their file and cursor), clicking again stops. */
export function PresenceBar({
  users,
  files,
  myUserId,
  following = null,
  onFollow,
}: {
  users: PresenceUser[]
  files: FileEntry[]
  myUserId: string
  following?: string | null
  onFollow?: (user: PresenceUser) => void
}) {
  const fileName = (fileId: string | null) => files.find((file) => file.id === fileId)?.filename
  const sorted = [...users].sort((a, b) =>
    a.user_id === myUserId ? -1 : b.user_id === myUserId ? 1 : a.username.localeCompare(b.username),
  )
  return (
    <ul aria-label="People in this room" className="flex items-center -space-x-1.5" data-testid="presence">
      {sorted.slice(0, 8).map((user) => {
        const where = fileName(user.file_id)
        const me = user.user_id === myUserId
        const label = `${me ? `${user.username} (you)` : user.username}${where ? ` — ${where}` : ''}${user.typing ? ', typing' : ''}`
        const avatar = (
          <>
            <Avatar name={user.username} colour={user.color} size={26} ring />
            {user.typing && (
              <span className="absolute -right-0.5 -bottom-0.5 h-2.5 w-2.5 rounded-full bg-ok ring-2 ring-panel" aria-hidden="true" />
            )}
          </>
        )
        return (
          <li key={user.user_id} title={label} aria-label={label} className="relative" data-username={user.username}>
            {me || !onFollow ? (
              avatar
            ) : (
              <button
                type="button"
                aria-label={following === user.user_id ? `Stop following ${user.username}` : `Follow ${user.username}`}
                aria-pressed={following === user.user_id}
                title={`${label}. ${following === user.user_id ? 'Click to stop following' : 'Click to follow'}`}
                onClick={() => onFollow(user)}
                className={`relative block rounded-full ${following === user.user_id ? 'outline-2 outline-offset-1 outline-accent' : ''}`}
              >
                {avatar}
              </button>
            )}
          </li>
        )
      })}
      {sorted.length > 8 && <li className="pl-3 text-xs text-muted">+{sorted.length - 8}</li>}
    </ul>
  )
}
