import { useState } from 'react'
import { useNavigate } from 'react-router'
import { describeError } from '../api/client'
import { useChangeRole, useMembers, useRegenerateInviteCode, useRemoveMember } from '../api/queries'
import type { Member, Room } from '../api/types'
import { colourForUser } from '../collab/protocol'
import { Alert, Avatar, Button, Dialog, ErrorState, Spinner } from './ui'
import { RoleBadge } from './RoleBadge'
import { inviteLink } from '../links'

/** Copies with the Clipboard API where the page may (HTTPS or localhost); otherwise selects the text for Ctrl+C. */
async function copyText(text: string, fallbackInput: HTMLInputElement | null): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text)
    return true
  } catch {
    fallbackInput?.select()
    return false
  }
}

export function InviteDialog({ room, open, onClose }: { room: Room; open: boolean; onClose: () => void }) {
  const regenerate = useRegenerateInviteCode(room.id)
  const [copied, setCopied] = useState<'link' | 'manual' | null>(null)
  const link = room.invite_code ? inviteLink(window.location.origin, room.invite_code) : ''
  return (
    <Dialog open={open} title="Invite people" onClose={onClose}>
      {room.invite_code ? (
        <>
          <p className="text-sm text-muted">Anyone with this link or code joins as an editor.</p>
          <div className="flex flex-col gap-1.5">
            <label htmlFor="invite-link" className="text-xs font-medium text-muted">
              Invite link
            </label>
            <div className="flex gap-2">
              <input
                id="invite-link"
                readOnly
                value={link}
                onFocus={(event) => event.currentTarget.select()}
                className="min-w-0 flex-1 rounded-md border border-line bg-canvas px-2.5 py-1.5 font-mono text-xs text-fg"
              />
              <Button
                variant="primary"
                onClick={() =>
                  void copyText(link, document.getElementById('invite-link') as HTMLInputElement | null).then((ok) =>
                    setCopied(ok ? 'link' : 'manual'),
                  )
                }
              >
                {copied === 'link' ? 'Copied' : 'Copy link'}
              </Button>
            </div>
            {copied === 'manual' && <p className="text-xs text-muted">Press Ctrl+C (⌘C) to copy the selected link.</p>}
          </div>
          <p className="text-sm text-muted">
            Code:{' '}
            <code data-testid="invite-code" className="rounded bg-canvas px-1.5 py-0.5 font-mono text-fg">
              {room.invite_code}
            </code>
          </p>
          {room.my_role === 'owner' && (
            <div className="flex items-center justify-between gap-3 border-t border-line pt-3">
              <p className="text-xs text-muted">A new code makes the old link stop working.</p>
              <Button busy={regenerate.isPending} onClick={() => regenerate.mutate(undefined, { onSuccess: () => setCopied(null) })}>
                New code
              </Button>
            </div>
          )}
          {regenerate.isError && <Alert>{describeError(regenerate.error)}</Alert>}
        </>
      ) : (
        <p className="text-sm text-muted">Only the owner and editors can invite people to this room.</p>
      )}
      <div className="flex justify-end">
        <Button onClick={onClose}>Done</Button>
      </div>
    </Dialog>
  )
}

export function MembersDialog({ room, myUserId, open, onClose }: { room: Room; myUserId: string; open: boolean; onClose: () => void }) {
  const members = useMembers(room.id, open)
  const isOwner = room.my_role === 'owner'
  return (
    <Dialog open={open} title="Members" onClose={onClose}>
      {members.isPending && <Spinner label="Loading members…" />}
      {members.isError && <ErrorState message={describeError(members.error)} onRetry={() => void members.refetch()} />}
      {members.isSuccess && (
        <ul className="-mx-1 flex max-h-80 flex-col overflow-y-auto" aria-label="Room members">
          {members.data.map((member) => (
            <MemberRow key={member.user_id} roomId={room.id} member={member} isOwner={isOwner} isMe={member.user_id === myUserId} />
          ))}
        </ul>
      )}
      <div className="flex items-center justify-between gap-2 border-t border-line pt-3">
        {isOwner && <RegenerateInviteButton roomId={room.id} />}
        {!isOwner && room.my_role !== null && <LeaveRoomButton roomId={room.id} myUserId={myUserId} />}
        <Button onClick={onClose} className="ml-auto">
          Done
        </Button>
      </div>
    </Dialog>
  )
}

function MemberRow({ roomId, member, isOwner, isMe }: { roomId: string; member: Member; isOwner: boolean; isMe: boolean }) {
  const changeRole = useChangeRole(roomId)
  const remove = useRemoveMember(roomId)
  const [confirming, setConfirming] = useState(false)
  const manageable = isOwner && member.role !== 'owner'
  const error = changeRole.error ?? remove.error
  return (
    <li className="flex flex-col gap-1 rounded-md px-1 py-1.5" data-testid="member-row" data-username={member.username}>
      <div className="flex items-center gap-2.5">
        <Avatar name={member.username} colour={colourForUser(member.user_id)} size={26} />
        <span className="min-w-0 flex-1 truncate text-sm">
          {member.username}
          {isMe && <span className="text-muted"> (you)</span>}
        </span>
        {manageable ? (
          <>
            <label htmlFor={`role-${member.user_id}`} className="sr-only">
              Role of {member.username}
            </label>
            <select
              id={`role-${member.user_id}`}
              value={member.role}
              aria-busy={changeRole.isPending || undefined}
              onChange={(event) => changeRole.mutate({ userId: member.user_id, role: event.target.value as 'editor' | 'viewer' })}
              className="rounded-md border border-line bg-canvas px-2 py-1 text-xs text-fg"
            >
              <option value="editor">Editor</option>
              <option value="viewer">Viewer</option>
            </select>
            {confirming ? (
              <Button
                variant="danger"
                className="px-2 py-1 text-xs"
                autoFocus
                aria-label={`Confirm removing ${member.username}`}
                busy={remove.isPending}
                onClick={() => remove.mutate(member.user_id)}
              >
                Confirm
              </Button>
            ) : (
              <Button
                variant="ghost"
                className="px-2 py-1 text-xs"
                onClick={() => setConfirming(true)}
                aria-label={`Remove ${member.username}`}
              >
                Remove
              </Button>
            )}
          </>
        ) : (
          <RoleBadge role={member.role} />
        )}
      </div>
      {error && <p className="pl-9 text-xs text-danger">{describeError(error)}</p>}
    </li>
  )
}

function LeaveRoomButton({ roomId, myUserId }: { roomId: string; myUserId: string }) {
  const leave = useRemoveMember(roomId)
  const navigate = useNavigate()
  return (
    <div className="flex flex-col gap-1">
      <Button
        variant="ghost"
        className="text-danger"
        busy={leave.isPending}
        onClick={() => leave.mutate(myUserId, { onSuccess: () => navigate('/') })}
      >
        Leave room
      </Button>
      {leave.isError && <p className="text-xs text-danger">{describeError(leave.error)}</p>}
    </div>
  )
}

/** A new invite code for the room: links and codes handed out before stop working. */
function RegenerateInviteButton({ roomId }: { roomId: string }) {
  const regenerate = useRegenerateInviteCode(roomId)
  return (
    <div className="flex flex-col gap-1">
      <Button variant="ghost" busy={regenerate.isPending} onClick={() => regenerate.mutate()}>
        {regenerate.isSuccess ? 'New invite code made' : 'New invite code'}
      </Button>
      {regenerate.isError && <p className="text-xs text-danger">{describeError(regenerate.error)}</p>}
    </div>
  )
}
