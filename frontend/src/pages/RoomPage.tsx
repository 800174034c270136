import { useCallback, useEffect, useMemo, useState, useSyncExternalStore, type ReactNode } from 'react'
import { Link, useNavigate, useParams, useSearchParams } from 'react-router'
import { useQueryClient } from '@tanstack/react-query'
import { ApiError, describeError } from '../api/client'
import { queryKeys, useFileContent, useFiles, useRoom } from '../api/queries'
import type { FileEntry, Room } from '../api/types'
import { SessionPool } from '../collab/sessionPool'
import type { FileSession } from '../collab/fileSession'
import { colourForUser } from '../collab/protocol'
import { useRoomConnection } from '../collab/useRoomConnection'
import { AppHeader } from '../components/AppHeader'
import { ChatPanel } from '../components/ChatPanel'
import { ConnectionBadge } from '../components/ConnectionBadge'
import { FileTree } from '../components/FileTree'
import { InviteDialog, MembersDialog } from '../components/MembersDialog'
import { PresenceBar } from '../components/PresenceBar'
import { RoleBadge } from '../components/RoleBadge'
import { Button, EmptyState, ErrorState, IconButton, Spinner } from '../components/ui'
import { ChatIcon, CloseIcon, LinkIcon, UsersIcon } from '../components/icons'
import { CodeEditor } from '../editor/CodeEditor'
import { useRoomLive } from '../state/roomLive'
import { useSession } from '../state/session'
import { useUi } from '../state/ui'

const NO_TABS: string[] = []

export function RoomPage() {
  const { roomId = '' } = useParams()
  const room = useRoom(roomId)
  if (room.isPending) {
    return (
      <Shell>
        <div className="flex flex-1 items-center justify-center">
          <Spinner label="Opening the room…" />
        </div>
      </Shell>
    )
  }
  if (room.isError) {
    const missing = room.error instanceof ApiError && room.error.status === 404
    return (
      <Shell>
        <div className="flex flex-1 flex-col items-center justify-center gap-3">
          <ErrorState
            message={missing ? 'This room does not exist, or you do not have access to it.' : describeError(room.error)}
            onRetry={missing ? undefined : () => void room.refetch()}
          />
          <Link to="/" className="text-sm text-accent hover:underline">
            Back to your rooms
          </Link>
        </div>
      </Shell>
    )
  }
  return <RoomWorkspace room={room.data} />
}

function Shell({ children }: { children: ReactNode }) {
  return (
    <div className="flex h-full flex-col">
      <AppHeader />
      {children}
    </div>
  )
}

function RoomWorkspace({ room }: { room: Room }) {
  const user = useSession((state) => state.user)
  const queryClient = useQueryClient()
  const navigate = useNavigate()
  const [searchParams, setSearchParams] = useSearchParams()
  const files = useFiles(room.id)
  const isMember = room.my_role !== null
  const canEdit = room.my_role === 'owner' || room.my_role === 'editor'
  const myUserId = user?.id ?? ''
  const controls = useRoomConnection(room.id, isMember)
  const presence = useRoomLive((state) => state.presence)
  const roomStatus = useRoomLive((state) => state.status)
  const roomClosedReason = useRoomLive((state) => state.closedReason)
  const tabs = useUi((state) => state.tabs[room.id] ?? NO_TABS)
  const openFileInUi = useUi((state) => state.openFile)
  const closeFileInUi = useUi((state) => state.closeFile)
  const keepOnly = useUi((state) => state.keepOnly)
  const [chatOpen, setChatOpen] = useState(true)
  const [membersOpen, setMembersOpen] = useState(false)
  const [inviteOpen, setInviteOpen] = useState(false)
  const activeFileId = searchParams.get('file')

  // The open tabs' live sessions; rebuilt when the user's right to write changes, so a new
  // viewer starts again from the server's content.
  const [pool, setPool] = useState<SessionPool | null>(null)
  const { edited } = controls
  useEffect(() => {
    if (!isMember || user === null) return
    const created = new SessionPool(
      { id: user.id, name: user.username, colour: colourForUser(user.id) },
      () => useSession.getState().accessToken,
      () => edited(),
    )
    setPool(created)
    const unsubscribe = useSession.subscribe((state) => {
      if (state.accessToken) created.setAccessToken(state.accessToken)
    })
    const warnBeforeLeaving = (event: BeforeUnloadEvent) => {
      if (created.anyUnsaved()) event.preventDefault()
    }
    window.addEventListener('beforeunload', warnBeforeLeaving)
    return () => {
      window.removeEventListener('beforeunload', warnBeforeLeaving)
      unsubscribe()
      created.destroy()
      setPool(null)
    }
  }, [room.id, isMember, canEdit, user, edited])

  const openFile = useCallback(
    (fileId: string) => {
      openFileInUi(room.id, fileId)
      setSearchParams({ file: fileId })
    },
    [room.id, openFileInUi, setSearchParams],
  )

  const fileIds = useMemo(() => (files.data ? new Set(files.data.map((file) => file.id)) : null), [files.data])

  // A file in the address (a reload, a shared link) opens as a tab once the list confirms it
  // exists; a deleted one gives way to another open tab.
  useEffect(() => {
    if (activeFileId === null || fileIds === null) return
    if (fileIds.has(activeFileId)) {
      if (!tabs.includes(activeFileId)) openFileInUi(room.id, activeFileId)
      return
    }
    const next = tabs.find((id) => id !== activeFileId && fileIds.has(id))
    setSearchParams(next ? { file: next } : {}, { replace: true })
  }, [activeFileId, fileIds, tabs, room.id, openFileInUi, setSearchParams])

  // Tabs of files deleted by anyone close, with their sessions.
  useEffect(() => {
    if (fileIds === null) return
    const gone = tabs.filter((id) => !fileIds.has(id))
    if (gone.length === 0) return
    for (const fileId of gone) pool?.release(fileId)
    keepOnly(room.id, fileIds)
  }, [fileIds, tabs, pool, keepOnly, room.id])

  useEffect(() => {
    controls.focus(activeFileId)
  }, [controls, activeFileId, roomStatus])

  const closeTab = (fileId: string) => {
    const session = pool?.peek(fileId)
    if (session?.connectionState.hasUnsavedEdits && !window.confirm('This file has edits the server has not saved yet. Close it anyway?'))
      return
    pool?.release(fileId)
    closeFileInUi(room.id, fileId)
    if (fileId === activeFileId) {
      const next = useUi.getState().active[room.id]
      setSearchParams(next ? { file: next } : {})
    }
  }

  const activeFile = files.data?.find((file) => file.id === activeFileId) ?? null
  const session = activeFile && pool ? pool.get(activeFile.id) : null

  if (roomStatus === 'closed' && roomClosedReason) {
    return (
      <Shell>
        <div className="flex flex-1 flex-col items-center justify-center gap-3 text-center" role="alert">
          <p className="text-sm text-fg">{roomClosedReason}</p>
          <Button
            onClick={() => {
              void queryClient.invalidateQueries({ queryKey: queryKeys.rooms })
              navigate('/')
            }}
          >
            Back to your rooms
          </Button>
        </div>
      </Shell>
    )
  }

  return (
    <div className="flex h-full flex-col">
      <AppHeader>
        <span className="text-faint" aria-hidden="true">
          /
        </span>
        <h1 className="truncate text-sm font-medium" data-testid="room-name">
          {room.name}
        </h1>
        {room.my_role && <RoleBadge role={room.my_role} />}
        <div className="ml-auto flex items-center gap-1">
          {isMember && <PresenceBar users={presence} files={files.data ?? []} myUserId={myUserId} />}
          <span className="mx-2 h-5 w-px bg-line" aria-hidden="true" />
          {room.invite_code && (
            <Button variant="ghost" onClick={() => setInviteOpen(true)} className="px-2">
              <LinkIcon /> Invite
            </Button>
          )}
          {isMember && (
            <IconButton label="Members" onClick={() => setMembersOpen(true)}>
              <UsersIcon />
            </IconButton>
          )}
          {isMember && (
            <IconButton label={chatOpen ? 'Hide chat' : 'Show chat'} aria-pressed={chatOpen} onClick={() => setChatOpen((open) => !open)}>
              <ChatIcon />
            </IconButton>
          )}
        </div>
      </AppHeader>

      <div className="flex min-h-0 flex-1">
        <aside className="flex w-60 shrink-0 flex-col border-r border-line bg-panel">
          {files.isPending && (
            <div className="p-3">
              <Spinner label="Loading files…" />
            </div>
          )}
          {files.isError && <ErrorState message={describeError(files.error)} onRetry={() => void files.refetch()} />}
          {files.isSuccess && (
            <FileTree
              roomId={room.id}
              files={files.data}
              activeFileId={activeFileId}
              canEdit={canEdit}
              presence={presence}
              myUserId={myUserId}
              onOpen={openFile}
            />
          )}
        </aside>

        <main className="flex min-w-0 flex-1 flex-col bg-[var(--cs-panel)]">
          <EditorTabs tabs={tabs} files={files.data ?? []} activeFileId={activeFileId} pool={pool} onSelect={openFile} onClose={closeTab} />
          {!canEdit && (
            <div role="status" data-testid="read-only-banner" className="border-b border-line bg-warn/10 px-4 py-1.5 text-xs text-warn">
              {isMember
                ? 'You are a viewer in this room: you see every change live, but cannot edit.'
                : 'This public room is read-only for you. Ask a member for an invite link to edit and see changes live.'}
            </div>
          )}
          <div className="relative min-h-0 flex-1">
            {activeFile ? (
              <EditorPane
                key={`${activeFile.id}:${pool ? 'live' : 'static'}`}
                room={room}
                file={activeFile}
                session={session}
                canEdit={canEdit}
                isMember={isMember}
              />
            ) : (
              <div className="flex h-full items-center justify-center">
                <EmptyState title={files.data?.length ? 'Open a file from the list' : 'This room has no files yet'}>
                  {canEdit && !files.data?.length
                    ? 'Create one with the + button beside “Files”.'
                    : 'Everyone who opens the same file edits it together.'}
                </EmptyState>
              </div>
            )}
          </div>
        </main>

        {isMember && chatOpen && (
          <aside className="flex w-72 shrink-0 flex-col border-l border-line bg-panel">
            <ChatPanel myUserId={myUserId} onSend={controls.sendChat} />
          </aside>
        )}
      </div>
      <MembersDialog room={room} myUserId={myUserId} open={membersOpen} onClose={() => setMembersOpen(false)} />
      <InviteDialog room={room} open={inviteOpen} onClose={() => setInviteOpen(false)} />
    </div>
  )
}

function EditorTabs({
  tabs,
  files,
  activeFileId,
  pool,
  onSelect,
  onClose,
}: {
  tabs: string[]
  files: FileEntry[]
  activeFileId: string | null
  pool: SessionPool | null
  onSelect: (fileId: string) => void
  onClose: (fileId: string) => void
}) {
  const shown = tabs.map((id) => files.find((file) => file.id === id)).filter((file): file is FileEntry => file !== undefined)
  if (shown.length === 0) return <div className="h-9 shrink-0 border-b border-line" />
  return (
    <div role="tablist" aria-label="Open files" className="flex h-9 shrink-0 items-stretch overflow-x-auto border-b border-line">
      {shown.map((file) => {
        const active = file.id === activeFileId
        return (
          <div
            key={file.id}
            className={`group flex items-center gap-1 border-r border-line pr-1 pl-3 text-[13px] ${active ? 'bg-canvas text-fg shadow-[inset_0_-2px_0_var(--cs-accent)]' : 'text-muted hover:bg-hover'}`}
          >
            <button
              type="button"
              role="tab"
              aria-selected={active}
              onClick={() => onSelect(file.id)}
              onAuxClick={(event) => event.button === 1 && onClose(file.id)}
              className="max-w-48 truncate py-1"
            >
              {file.filename}
              <UnsavedDot session={pool?.peek(file.id) ?? null} />
            </button>
            <IconButton
              label={`Close ${file.filename}`}
              onClick={() => onClose(file.id)}
              className="h-5 w-5 opacity-60 group-hover:opacity-100"
            >
              <CloseIcon />
            </IconButton>
          </div>
        )
      })}
    </div>
  )
}

function useConnectionState(session: FileSession | null) {
  const subscribe = useCallback((listener: () => void) => (session ? session.subscribe(listener) : () => {}), [session])
  return useSyncExternalStore(subscribe, () => session?.connectionState ?? null)
}

function UnsavedDot({ session }: { session: FileSession | null }) {
  const state = useConnectionState(session)
  if (!state?.hasUnsavedEdits) return null
  return <span className="ml-1.5 inline-block h-1.5 w-1.5 rounded-full bg-warn align-middle" aria-label="unsaved edits" />
}

function EditorPane({
  room,
  file,
  session,
  canEdit,
  isMember,
}: {
  room: Room
  file: FileEntry
  session: FileSession | null
  canEdit: boolean
  isMember: boolean
}) {
  const state = useConnectionState(session)
  const queryClient = useQueryClient()
  const snapshot = useFileContent(file.id, !isMember)
  const typing = useRoomLive((live) => live.typing)
  const myUserId = useSession((s) => s.user?.id)
  const typists = Object.entries(typing)
    .filter(([userId, entry]) => userId !== myUserId && entry.fileId === file.id)
    .map(([, entry]) => entry.username)

  // A refused write means this user's role changed: reload the room to learn it.
  useEffect(() => {
    if (state?.writeRefused) void queryClient.invalidateQueries({ queryKey: queryKeys.room(room.id) })
  }, [state?.writeRefused, queryClient, room.id])
  useEffect(() => {
    if (state?.status === 'closed') void queryClient.invalidateQueries({ queryKey: queryKeys.files(room.id) })
  }, [state?.status, queryClient, room.id])

  if (!isMember && snapshot.isPending)
    return (
      <div className="flex h-full items-center justify-center">
        <Spinner label="Loading the file…" />
      </div>
    )
  if (!isMember && snapshot.isError) return <ErrorState message={describeError(snapshot.error)} onRetry={() => void snapshot.refetch()} />

  return (
    <div className="flex h-full flex-col">
      {state?.status === 'closed' && (
        <div role="alert" className="border-b border-line bg-danger-soft px-4 py-1.5 text-xs text-danger">
          {state.closedReason}
        </div>
      )}
      <div className="relative min-h-0 flex-1">
        {session && state && !state.synced && state.status !== 'closed' && (
          <div className="absolute inset-0 z-10 flex items-center justify-center bg-[var(--cs-panel)]/70">
            <Spinner label={state.status === 'offline' ? 'Offline: waiting for the server…' : 'Loading the file…'} />
          </div>
        )}
        <CodeEditor
          session={session}
          snapshot={snapshot.data?.content}
          fileId={file.id}
          roomId={room.id}
          filename={file.filename}
          language={file.language}
          readOnly={!canEdit || state?.status === 'closed'}
        />
      </div>
      <footer className="flex h-7 shrink-0 items-center gap-4 border-t border-line bg-panel px-3 text-xs text-muted">
        {state ? <ConnectionBadge state={state} /> : <span>Read-only snapshot</span>}
        <span aria-live="polite" data-testid="typing-indicator" className="flex items-center gap-1.5">
          {typists.length > 0 && (
            <>
              <span className="typing-dots inline-flex gap-0.5" aria-hidden="true">
                <span className="h-1 w-1 rounded-full bg-current" />
                <span className="h-1 w-1 rounded-full bg-current" />
                <span className="h-1 w-1 rounded-full bg-current" />
              </span>
              {typists.length === 1 ? `${typists[0]} is typing…` : `${typists.join(', ')} are typing…`}
            </>
          )}
        </span>
        <span className="ml-auto capitalize">{file.language}</span>
      </footer>
    </div>
  )
}
