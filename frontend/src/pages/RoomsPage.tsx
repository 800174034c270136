import { useState, type FormEvent } from 'react'
import { Link, useNavigate } from 'react-router'
import { describeError } from '../api/client'
import { useCreateRoom, useJoinRoom, useRooms } from '../api/queries'
import type { Room } from '../api/types'
import { AppHeader } from '../components/AppHeader'
import { Alert, Button, Dialog, EmptyState, ErrorState, Spinner, TextField } from '../components/ui'
import { GlobeIcon, LockIcon, PlusIcon } from '../components/icons'
import { RoleBadge } from '../components/RoleBadge'
import { relativeTime } from '../format'
import { inviteCodeFromInput } from '../links'

export function RoomsPage() {
  const rooms = useRooms()
  const [creating, setCreating] = useState(false)
  const mine = rooms.data?.filter((room) => room.my_role !== null) ?? []
  const others = rooms.data?.filter((room) => room.my_role === null) ?? []

  return (
    <div className="flex h-full flex-col">
      <AppHeader />
      <main className="mx-auto flex w-full max-w-5xl flex-1 flex-col gap-8 overflow-y-auto px-6 py-8">
        <div className="flex flex-wrap items-end justify-between gap-4">
          <div>
            <h1 className="text-xl font-semibold tracking-tight">Rooms</h1>
            <p className="mt-1 text-sm text-muted">Each room holds files you edit together.</p>
          </div>
          <div className="flex flex-wrap items-end gap-3">
            <JoinForm />
            <Button variant="primary" onClick={() => setCreating(true)}>
              <PlusIcon /> New room
            </Button>
          </div>
        </div>

        {rooms.isPending && <Spinner label="Loading rooms…" />}
        {rooms.isError && <ErrorState message={describeError(rooms.error)} onRetry={() => void rooms.refetch()} />}
        {rooms.isSuccess && (
          <>
            <RoomSection title="Your rooms" rooms={mine} empty="You are not in any room yet. Create one, or join with an invite code." />
            <RoomSection title="Public rooms" rooms={others} empty="No other public rooms." />
          </>
        )}
      </main>
      <CreateRoomDialog open={creating} onClose={() => setCreating(false)} />
    </div>
  )
}

function RoomSection({ title, rooms, empty }: { title: string; rooms: Room[]; empty: string }) {
  const headingId = `section-${title.replace(/\s+/g, '-').toLowerCase()}`
  return (
    <section aria-labelledby={headingId} className="flex flex-col gap-3">
      <h2 id={headingId} className="text-xs font-semibold tracking-wide text-faint uppercase">
        {title} <span className="font-normal">· {rooms.length}</span>
      </h2>
      {rooms.length === 0 ? (
        <div className="rounded-xl border border-dashed border-line">
          <EmptyState title={empty} />
        </div>
      ) : (
        <ul className="grid gap-3 sm:grid-cols-2 lg:grid-cols-3">
          {rooms.map((room) => (
            <li key={room.id}>
              <RoomCard room={room} />
            </li>
          ))}
        </ul>
      )}
    </section>
  )
}

function RoomCard({ room }: { room: Room }) {
  return (
    <Link
      to={`/rooms/${room.id}`}
      className="group flex h-full flex-col gap-2 rounded-xl border border-line bg-panel p-4 transition hover:border-accent/50 hover:bg-raised"
    >
      <div className="flex items-start justify-between gap-2">
        <h3 className="truncate font-medium text-fg group-hover:text-accent">{room.name}</h3>
        {room.my_role && <RoleBadge role={room.my_role} />}
      </div>
      <p className="line-clamp-2 min-h-[2.5em] text-sm text-muted">{room.description || 'No description'}</p>
      <div className="mt-auto flex items-center gap-3 text-xs text-faint">
        <span className="inline-flex items-center gap-1">
          {room.is_public ? <GlobeIcon /> : <LockIcon />}
          {room.is_public ? 'Public' : 'Private'}
        </span>
        <span>
          {room.member_count} {room.member_count === 1 ? 'member' : 'members'}
        </span>
        <span className="ml-auto">updated {relativeTime(room.updated_at)}</span>
      </div>
    </Link>
  )
}

function JoinForm() {
  const [code, setCode] = useState('')
  const join = useJoinRoom()
  const navigate = useNavigate()
  const submit = (event: FormEvent) => {
    event.preventDefault()
    const inviteCode = inviteCodeFromInput(code)
    if (inviteCode === '') return
    join.mutate(inviteCode, { onSuccess: (room) => navigate(`/rooms/${room.id}`) })
  }
  return (
    <form onSubmit={submit} className="flex flex-col gap-1">
      <div className="flex items-end gap-2">
        <TextField
          id="invite-code"
          label="Invite code or link"
          placeholder="Paste a code"
          value={code}
          onChange={(event) => setCode(event.target.value)}
          className="w-52"
        />
        <Button type="submit" busy={join.isPending} disabled={code.trim() === ''}>
          Join
        </Button>
      </div>
      {join.isError && (
        <p role="alert" className="text-xs text-danger">
          {describeError(join.error)}
        </p>
      )}
    </form>
  )
}

function CreateRoomDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const [name, setName] = useState('')
  const [description, setDescription] = useState('')
  const [isPublic, setIsPublic] = useState(false)
  const create = useCreateRoom()
  const navigate = useNavigate()
  const close = () => {
    create.reset()
    onClose()
  }
  const submit = (event: FormEvent) => {
    event.preventDefault()
    create.mutate(
      { name: name.trim(), description: description.trim(), is_public: isPublic },
      {
        onSuccess: (room) => {
          setName('')
          setDescription('')
          onClose()
          navigate(`/rooms/${room.id}`)
        },
      },
    )
  }
  return (
    <Dialog open={open} title="New room" onClose={close}>
      <form onSubmit={submit} className="flex flex-col gap-4">
        <TextField
          id="room-name"
          label="Name"
          required
          maxLength={100}
          autoFocus
          value={name}
          onChange={(event) => setName(event.target.value)}
        />
        <TextField
          id="room-description"
          label="Description (optional)"
          maxLength={500}
          value={description}
          onChange={(event) => setDescription(event.target.value)}
        />
        <label className="flex items-start gap-2 text-sm">
          <input
            type="checkbox"
            checked={isPublic}
            onChange={(event) => setIsPublic(event.target.checked)}
            className="mt-0.5 accent-[var(--cs-accent)]"
          />
          <span>
            Public
            <span className="block text-xs text-muted">Everyone signed in can find and read it; only members edit.</span>
          </span>
        </label>
        {create.isError && <Alert>{describeError(create.error)}</Alert>}
        <div className="flex justify-end gap-2">
          <Button onClick={close}>Cancel</Button>
          <Button type="submit" variant="primary" busy={create.isPending} disabled={name.trim() === ''}>
            Create room
          </Button>
        </div>
      </form>
    </Dialog>
  )
}
