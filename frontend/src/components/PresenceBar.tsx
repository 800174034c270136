import type { FileEntry, PresenceUser } from '../api/types'
import { Avatar } from './ui'

/** Who is in the room, and on which file; a tooltip and a label for screen readers say both. */
export function PresenceBar({ users, files, myUserId }: { users: PresenceUser[]; files: FileEntry[]; myUserId: string }) {
  const fileName = (fileId: string | null) => files.find((file) => file.id === fileId)?.filename
  const sorted = [...users].sort((a, b) =>
    a.user_id === myUserId ? -1 : b.user_id === myUserId ? 1 : a.username.localeCompare(b.username),
  )
  return (
    <ul aria-label="People in this room" className="flex items-center -space-x-1.5" data-testid="presence">
      {sorted.slice(0, 8).map((user) => {
        const where = fileName(user.file_id)
        const label = `${user.user_id === myUserId ? `${user.username} (you)` : user.username}${where ? ` — ${where}` : ''}${user.typing ? ', typing' : ''}`
        return (
          <li key={user.user_id} title={label} aria-label={label} className="relative" data-username={user.username}>
            <Avatar name={user.username} colour={user.color} size={26} ring />
            {user.typing && (
              <span className="absolute -right-0.5 -bottom-0.5 h-2.5 w-2.5 rounded-full bg-ok ring-2 ring-panel" aria-hidden="true" />
            )}
          </li>
        )
      })}
      {sorted.length > 8 && <li className="pl-3 text-xs text-muted">+{sorted.length - 8}</li>}
    </ul>
  )
}
