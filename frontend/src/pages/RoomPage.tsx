import { useCallback, useEffect, useMemo, useState, useSyncExternalStore, type KeyboardEvent, type ReactNode } from 'react'
import { Link, useNavigate, useParams, useSearchParams } from 'react-router'
import { useQueryClient } from '@tanstack/react-query'
import { ApiError, describeError } from '../api/client'
import { fileAccessProblem, queryKeys, useFileContent, useFiles, useRoom } from '../api/queries'
import { languageFor, runFile, useLanguages, type LanguageList } from '../api/executions'
import type { FileEntry, Room } from '../api/types'
import { poolFor, type SessionPool } from '../collab/sessionPool'
import type { FileSession } from '../collab/fileSession'
import { colourForUser } from '../collab/protocol'
import { useRoomConnection } from '../collab/useRoomConnection'
import { AppHeader, PageTitle } from '../components/AppHeader'
import { ChatPanel } from '../components/ChatPanel'
import { ConnectionBadge } from '../components/ConnectionBadge'
import { FileTree } from '../components/FileTree'
import { InviteDialog, MembersDialog } from '../components/MembersDialog'
import { PresenceBar } from '../components/PresenceBar'
import { RoleBadge } from '../components/RoleBadge'
import { Button, EmptyState, ErrorState, IconButton, Spinner } from '../components/ui'
import { ChatIcon, ClockIcon, CloseIcon, LinkIcon, PlayIcon, SearchIcon, SparkIcon, UsersIcon } from '../components/icons'
import { QuickOpen } from '../components/QuickOpen'
import { SearchPanel } from '../components/SearchPanel'
import { useFollow } from '../state/follow'
import { AssistantPanel } from '../components/AssistantPanel'
import { HistoryPanel } from '../components/HistoryPanel'
import { VersionView } from '../components/VersionView'
import { historyKeys, saveVersion, useVersions, type Version } from '../api/history'
import { RunPanel } from '../components/RunPanel'
import { CodeEditor, requestEditorFocus, revealInEditor } from '../editor/CodeEditor'
import { useRoomLive } from '../state/roomLive'
import { useSession } from '../state/session'
import { useUi } from '../state/ui'
import { useRuns } from '../state/runs'

const NO_TABS: string[] = []

/** The quick-open button's icon: a file with a magnifier. */
const FileSearchLabel = () => (
  <svg width={16} height={16} viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth={1.8} aria-hidden="true">
    <path d="M13 3H6.5A1.5 1.5 0 0 0 5 4.5v15A1.5 1.5 0 0 0 6.5 21H11M13 3l5 5v3M13 3v5h5" />
    <circle cx="16.5" cy="16.5" r="3" />
    <path d="M18.7 18.7L21 21" />
  </svg>
)

export function RoomPage() {
  const { roomId = '' } = useParams()
  const room = useRoom(roomId)
  if (room.isPending && room.data === undefined) {
    return (
      <Shell>
        <div className="flex flex-1 items-center justify-center">
          <Spinner label="Opening the room…" />
        </div>
      </Shell>
    )
  }
  // A failed background refetch keeps the room on screen (and its unsaved edits alive).
  if (room.data === undefined) {
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
  const roomClosedReason = useRoomLive((state) => (state.roomId === room.id ? state.closedReason : null))
  const tabs = useUi((state) => state.tabs[room.id] ?? NO_TABS)
  const openFileInUi = useUi((state) => state.openFile)
  const closeFileInUi = useUi((state) => state.closeFile)
  const keepOnly = useUi((state) => state.keepOnly)
  // The right-hand panel: the room's chat, the assistant, the history, or none.
  const [sidePanel, setSidePanel] = useState<'chat' | 'assistant' | 'history' | 'search' | null>('chat')
  const [quickOpen, setQuickOpen] = useState(false)
  const following = useFollow((state) => state.following)
  const searchOpen = sidePanel === 'search'
  const chatOpen = sidePanel === 'chat'
  const assistantOpen = sidePanel === 'assistant'
  const historyOpen = sidePanel === 'history'
  // A version shown over the editor, beside the live file.
  const [viewedVersion, setViewedVersion] = useState<Version | null>(null)
  const [saveNotice, setSaveNotice] = useState<string | null>(null)
  const [membersOpen, setMembersOpen] = useState(false)
  const [inviteOpen, setInviteOpen] = useState(false)
  const [reloads, setReloads] = useState(0)
  const [runOpen, setRunOpen] = useState(false)
  const languages = useLanguages()
  const activeFileId = searchParams.get('file')

  // The open tabs' live sessions. A change of role gets a new pool, so a new viewer starts
  // again from the server's content; leaving the page keeps unsaved sessions until they are saved.
  const [pool, setPool] = useState<SessionPool | null>(null)
  const { edited } = controls
  useEffect(() => {
    if (!isMember || user === null) return
    const shown = poolFor({
      roomId: room.id,
      user: { id: user.id, name: user.username, colour: colourForUser(user.id) },
      canWrite: canEdit,
      checkAccess: fileAccessProblem,
      accessToken: () => useSession.getState().accessToken,
    })
    shown.show(edited)
    setPool(shown)
    return () => {
      shown.hide()
      setPool(null)
    }
  }, [room.id, isMember, canEdit, user, edited])

  const openFile = useCallback(
    (fileId: string, options: { focusEditor: boolean; following?: boolean } = { focusEditor: true }) => {
      // Opening a file oneself ends following someone; their switches open files here too.
      if (!options.following) useFollow.getState().stop()
      if (options.focusEditor) requestEditorFocus()
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

  // Someone is on a file this list does not have: it was just created; fetch the list now.
  const unknownFileInPresence = presence.some((entry) => entry.file_id !== null && fileIds !== null && !fileIds.has(entry.file_id))
  useEffect(() => {
    if (unknownFileInPresence) void queryClient.invalidateQueries({ queryKey: queryKeys.files(room.id) })
  }, [unknownFileInPresence, queryClient, room.id])

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
  const runBlocker = activeFile ? whyNotRunnable(activeFile.filename, languages.data) : null
  const runActiveFile = useCallback(() => {
    if (activeFile === null) return
    setRunOpen(true)
    if (whyNotRunnable(activeFile.filename, languages.data) !== null) return
    const saving = pool?.peek(activeFile.id) ?? null
    void useRuns.getState().start(
      activeFile.id,
      (fileId, stdin, onOutput, signal) => runFile(fileId, stdin, { onOutput }, signal),
      () => untilSaved(saving),
    )
  }, [activeFile, languages.data, pool])

  const versions = useVersions(historyOpen || viewedVersion !== null ? (activeFile?.id ?? null) : null)
  // A version on screen belongs to the shown file; another file (or none) closes it.
  useEffect(() => {
    if (viewedVersion !== null && viewedVersion.file_id !== activeFileId) setViewedVersion(null)
  }, [viewedVersion, activeFileId])

  // Ctrl+S (Cmd+S) saves the shown file as a version, once its edits have reached the server,
  // instead of the browser's "save page".
  const saveActiveFile = useCallback(() => {
    if (activeFile === null || !canEdit) return
    const saving = pool?.peek(activeFile.id) ?? null
    setSaveNotice('Saving a version…')
    void untilSaved(saving)
      .then(() => saveVersion(activeFile.id))
      .then((version) => {
        setSaveNotice(`Saved as v${version.number}`)
        void queryClient.invalidateQueries({ queryKey: historyKeys.versions(activeFile.id) })
      })
      .catch((error: unknown) => setSaveNotice(`Not saved: ${describeError(error)}`))
  }, [activeFile, canEdit, pool, queryClient])
  useEffect(() => {
    if (saveNotice === null || saveNotice.endsWith('…')) return
    const timer = setTimeout(() => setSaveNotice(null), 4000)
    return () => clearTimeout(timer)
  }, [saveNotice])
  useEffect(() => {
    const onKeyDown = (event: globalThis.KeyboardEvent) => {
      if (event.key.toLowerCase() !== 's' || !(event.ctrlKey || event.metaKey) || event.altKey || event.shiftKey) return
      event.preventDefault()
      event.stopPropagation()
      saveActiveFile()
    }
    window.addEventListener('keydown', onKeyDown, true)
    return () => window.removeEventListener('keydown', onKeyDown, true)
  }, [saveActiveFile])

  // Ctrl+P (Cmd+P) opens any file by name; Ctrl+Shift+F (Cmd+Shift+F) searches every file, also from the editor.
  useEffect(() => {
    const onKeyDown = (event: globalThis.KeyboardEvent) => {
      if (!(event.ctrlKey || event.metaKey) || event.altKey) return
      const key = event.key.toLowerCase()
      if (key === 'p' && !event.shiftKey) setQuickOpen(true)
      else if (key === 'f' && event.shiftKey) setSidePanel('search')
      else return
      event.preventDefault()
      event.stopPropagation()
    }
    window.addEventListener('keydown', onKeyDown, true)
    return () => window.removeEventListener('keydown', onKeyDown, true)
  }, [])

  // Following someone: their file opens here whenever they switch; it stops when they leave the room.
  const followedFileId = following ? (presence.find((user) => user.user_id === following.userId)?.file_id ?? undefined) : undefined
  useEffect(() => {
    if (following === null) return
    if (followedFileId === undefined) {
      if (!presence.some((user) => user.user_id === following.userId)) useFollow.getState().stop()
      return
    }
    if (followedFileId !== null && followedFileId !== activeFileId && fileIds?.has(followedFileId)) {
      openFile(followedFileId, { focusEditor: false, following: true })
    }
  }, [following, followedFileId, activeFileId, fileIds, presence, openFile])
  useEffect(() => () => useFollow.getState().stop(), [room.id])

  // Ctrl+Enter (Cmd+Enter) runs the shown file, also from inside the editor (which would
  // otherwise insert a line).
  useEffect(() => {
    const onKeyDown = (event: globalThis.KeyboardEvent) => {
      if (event.key !== 'Enter' || !(event.ctrlKey || event.metaKey) || event.altKey || event.shiftKey) return
      event.preventDefault()
      event.stopPropagation()
      runActiveFile()
    }
    window.addEventListener('keydown', onKeyDown, true)
    return () => window.removeEventListener('keydown', onKeyDown, true)
  }, [runActiveFile])

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
        <PageTitle testId="room-name">{room.name}</PageTitle>
        {room.my_role && <RoleBadge role={room.my_role} />}
        <div className="ml-auto flex items-center gap-1">
          {isMember && (
            <PresenceBar
              users={presence}
              files={files.data ?? []}
              myUserId={myUserId}
              following={following?.userId ?? null}
              onFollow={(user) =>
                following?.userId === user.user_id
                  ? useFollow.getState().stop()
                  : useFollow.getState().follow({ userId: user.user_id, username: user.username })
              }
            />
          )}
          {isMember && <span className="mx-2 h-5 w-px bg-line" aria-hidden="true" />}
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
          <IconButton label="Open a file (Ctrl+P)" onClick={() => setQuickOpen(true)} aria-keyshortcuts="Control+P Meta+P">
            <FileSearchLabel />
          </IconButton>
          <IconButton
            label={searchOpen ? 'Hide the search' : 'Search the files (Ctrl+Shift+F)'}
            aria-pressed={searchOpen}
            aria-keyshortcuts="Control+Shift+F Meta+Shift+F"
            onClick={() => setSidePanel(searchOpen ? null : 'search')}
          >
            <SearchIcon />
          </IconButton>
          {isMember && (
            <IconButton
              label={chatOpen ? 'Hide chat' : 'Show chat'}
              aria-pressed={chatOpen}
              onClick={() => setSidePanel(chatOpen ? null : 'chat')}
            >
              <ChatIcon />
            </IconButton>
          )}
          {isMember && (
            <IconButton
              label={historyOpen ? 'Hide the history' : 'Show the history'}
              aria-pressed={historyOpen}
              onClick={() => setSidePanel(historyOpen ? null : 'history')}
            >
              <ClockIcon />
            </IconButton>
          )}
          {isMember && (
            <IconButton
              label={assistantOpen ? 'Hide the assistant' : 'Show the assistant'}
              aria-pressed={assistantOpen}
              onClick={() => setSidePanel(assistantOpen ? null : 'assistant')}
            >
              <SparkIcon />
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
          {files.isError && files.data === undefined && (
            <ErrorState message={describeError(files.error)} onRetry={() => void files.refetch()} />
          )}
          {files.data !== undefined && (
            <FileTree
              roomId={room.id}
              roomName={room.name}
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
          <EditorTabs
            tabs={tabs}
            files={files.data ?? []}
            activeFileId={activeFileId}
            pool={pool}
            onSelect={openFile}
            onClose={closeTab}
            trailing={
              activeFile && (
                <>
                  {saveNotice && (
                    <span role="status" className="mx-2 text-xs text-muted" data-testid="save-notice">
                      {saveNotice}
                    </span>
                  )}
                  <Button
                    variant="ghost"
                    className="mx-1 my-1 px-2 py-0.5 text-xs"
                    onClick={runActiveFile}
                    title={runBlocker ?? `Run ${activeFile.filename} (Ctrl+Enter)`}
                    aria-keyshortcuts="Control+Enter Meta+Enter"
                    data-testid="run-button"
                  >
                    <PlayIcon /> Run
                  </Button>
                </>
              )
            }
          />
          {following && (
            <div
              role="status"
              data-testid="following-banner"
              className="flex items-center gap-2 border-b border-line bg-accent-soft px-4 py-1.5 text-xs text-fg"
            >
              Following {following.username}: their file and cursor stay in view until you type or click.
              <Button variant="ghost" className="ml-auto px-2 py-0.5 text-xs" onClick={() => useFollow.getState().stop()}>
                Stop following
              </Button>
            </div>
          )}
          {!canEdit && (
            <div role="status" data-testid="read-only-banner" className="border-b border-line bg-warn/10 px-4 py-1.5 text-xs text-warn">
              {isMember
                ? 'You are a viewer in this room: you see every change live, but cannot edit.'
                : 'This public room is read-only for you. Ask a member for an invite link to edit and see changes live.'}
            </div>
          )}
          <div
            className="relative min-h-0 flex-1"
            id={EDITOR_PANEL_ID}
            role={activeFile ? 'tabpanel' : undefined}
            aria-labelledby={activeFile ? tabId(activeFile.id) : undefined}
          >
            {activeFile ? (
              <EditorPane
                key={`${activeFile.id}:${pool ? 'live' : 'static'}:${reloads}`}
                room={room}
                file={activeFile}
                session={session}
                canEdit={canEdit}
                isMember={isMember}
                onReload={() => {
                  pool?.release(activeFile.id)
                  setReloads((count) => count + 1)
                }}
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
            {viewedVersion && activeFile && viewedVersion.file_id === activeFile.id && (
              <VersionView
                key={viewedVersion.id}
                version={viewedVersion}
                versions={versions.data ?? [viewedVersion]}
                file={activeFile}
                session={session}
                canEdit={canEdit}
                onClose={() => setViewedVersion(null)}
              />
            )}
          </div>
          {runOpen && activeFile && (
            <RunPanel
              fileId={activeFile.id}
              filename={activeFile.filename}
              runnable={runBlocker}
              onRun={runActiveFile}
              onClose={() => setRunOpen(false)}
            />
          )}
        </main>

        {searchOpen && (
          <aside className="flex w-80 shrink-0 flex-col border-l border-line bg-panel" aria-label="Search">
            <SearchPanel
              roomId={room.id}
              onOpen={(match) => {
                openFile(match.file_id)
                revealInEditor(match.file_id, match.line, match.column, match.length)
              }}
            />
          </aside>
        )}
        {isMember && chatOpen && (
          <aside className="flex w-72 shrink-0 flex-col border-l border-line bg-panel">
            <ChatPanel myUserId={myUserId} onSend={controls.sendChat} />
          </aside>
        )}
        {isMember && historyOpen && (
          <aside className="flex w-80 shrink-0 flex-col border-l border-line bg-panel" aria-label="History">
            <HistoryPanel
              roomId={room.id}
              file={activeFile}
              canEdit={canEdit}
              selectedVersionId={viewedVersion?.id ?? null}
              onSelect={setViewedVersion}
            />
          </aside>
        )}
        {isMember && assistantOpen && (
          <aside className="flex w-96 shrink-0 flex-col border-l border-line bg-panel" aria-label="Assistant">
            <AssistantPanel roomId={room.id} file={activeFile} canEdit={canEdit} />
          </aside>
        )}
      </div>
      {quickOpen && <QuickOpen files={files.data ?? []} onOpen={(fileId) => openFile(fileId)} onClose={() => setQuickOpen(false)} />}
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
  trailing,
}: {
  tabs: string[]
  files: FileEntry[]
  activeFileId: string | null
  pool: SessionPool | null
  onSelect: (fileId: string, options?: { focusEditor: boolean }) => void
  onClose: (fileId: string) => void
  /** Shown at the strip's right end (the Run button). */
  trailing?: ReactNode
}) {
  const shown = tabs.map((id) => files.find((file) => file.id === id)).filter((file): file is FileEntry => file !== undefined)
  if (shown.length === 0) return <div className="flex h-9 shrink-0 justify-end border-b border-line">{trailing}</div>
  // The tab pattern: one tab stop for the strip, arrow keys between tabs, Delete closes one.
  const onKeyDown = (event: KeyboardEvent<HTMLButtonElement>, index: number) => {
    const target =
      event.key === 'ArrowRight'
        ? shown[(index + 1) % shown.length]
        : event.key === 'ArrowLeft'
          ? shown[(index - 1 + shown.length) % shown.length]
          : event.key === 'Home'
            ? shown[0]
            : event.key === 'End'
              ? shown[shown.length - 1]
              : null
    if (event.key === 'Delete') {
      event.preventDefault()
      onClose(shown[index].id)
      return
    }
    if (!target) return
    event.preventDefault()
    onSelect(target.id, { focusEditor: false })
    document.getElementById(tabId(target.id))?.focus()
  }
  return (
    <div className="flex h-9 shrink-0 items-stretch overflow-x-auto border-b border-line">
      <div role="tablist" aria-label="Open files" className="flex items-stretch">
        {shown.map((file, index) => {
          const active = file.id === activeFileId
          return (
            <div
              key={file.id}
              role="presentation"
              className={`group flex items-center gap-1 border-r border-line pr-1 pl-3 text-[13px] ${active ? 'bg-canvas text-fg shadow-[inset_0_-2px_0_var(--cs-accent)]' : 'text-muted hover:bg-hover'}`}
            >
              <button
                type="button"
                role="tab"
                id={tabId(file.id)}
                aria-selected={active}
                aria-controls={EDITOR_PANEL_ID}
                aria-keyshortcuts="Delete"
                tabIndex={active || (activeFileId === null && index === 0) ? 0 : -1}
                onClick={() => onSelect(file.id)}
                onKeyDown={(event) => onKeyDown(event, index)}
                onAuxClick={(event) => event.button === 1 && onClose(file.id)}
                className="max-w-48 truncate py-1"
              >
                {file.filename}
                <UnsavedDot session={pool?.peek(file.id) ?? null} />
              </button>
              {/* A mouse affordance, hidden from the tab list's accessibility tree (a tablist holds
                  tabs only); keyboard and screen-reader users close the focused tab with Delete. */}
              <IconButton
                label={`Close ${file.filename}`}
                aria-hidden="true"
                tabIndex={-1}
                onClick={() => onClose(file.id)}
                className="h-5 w-5 opacity-60 group-hover:opacity-100"
              >
                <CloseIcon />
              </IconButton>
            </div>
          )
        })}
      </div>
      <div className="ml-auto flex shrink-0 items-center">{trailing}</div>
    </div>
  )
}

/** Why a file cannot run on this server, or null when it can (or the languages are not known yet). */
function whyNotRunnable(filename: string, listed: LanguageList | undefined): string | null {
  if (listed === undefined) return null
  // The server runs no code at all (its sandbox cannot enforce its limits here): it says why.
  if (listed.unavailable_reason) return listed.unavailable_reason
  const language = languageFor(filename, listed.languages)
  if (language === null) return `Nothing runs ${filename}: its extension is not one of a known language`
  if (!language.available) return `${language.name} is not installed on this server`
  return null
}

/** Waits (at most a few seconds) until the server has the file's edits, so the run sees them. */
function untilSaved(session: FileSession | null, timeoutMs = 3000): Promise<void> {
  if (session === null || !session.connectionState.hasUnsavedEdits) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      unsubscribe()
      resolve()
    }
    const timer = setTimeout(done, timeoutMs)
    const unsubscribe = session.subscribe(() => {
      if (!session.connectionState.hasUnsavedEdits) done()
    })
  })
}

const EDITOR_PANEL_ID = 'editor-panel'
const tabId = (fileId: string) => `tab-${fileId}`

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
  onReload,
}: {
  room: Room
  file: FileEntry
  session: FileSession | null
  canEdit: boolean
  isMember: boolean
  /** Drops this tab's copy of the file and opens it again from the server. */
  onReload: () => void
}) {
  const state = useConnectionState(session)
  const queryClient = useQueryClient()
  const snapshot = useFileContent(file.id, !isMember)
  const presence = useRoomLive((live) => live.presence)
  const myUserId = useSession((s) => s.user?.id)
  const typists = presence
    .filter((user) => user.typing && user.user_id !== myUserId && user.file_id === file.id)
    .map((user) => user.username)

  // A refused write may mean this user's role changed: reload the room to learn it (each time).
  const refusals = state?.refusal?.count ?? 0
  useEffect(() => {
    if (refusals > 0) void queryClient.invalidateQueries({ queryKey: queryKeys.room(room.id) })
  }, [refusals, queryClient, room.id])
  useEffect(() => {
    if (state?.status === 'closed') void queryClient.invalidateQueries({ queryKey: queryKeys.files(room.id) })
  }, [state?.status, queryClient, room.id])

  // A member's file waits for its live session (the user's identity arrives with the session
  // check); a plain editor meanwhile would take typing that is then thrown away.
  if (isMember && session === null)
    return (
      <div className="flex h-full items-center justify-center">
        <Spinner label="Loading the file…" />
      </div>
    )
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
        <div role="alert" className="flex items-center gap-3 border-b border-line bg-danger-soft px-4 py-1.5 text-xs text-danger">
          <span className="flex-1">{state.closedReason}</span>
          <Button variant="ghost" className="px-2 py-0.5 text-xs" onClick={onReload}>
            Reload the file
          </Button>
        </div>
      )}
      {state?.refusal && canEdit && state.status !== 'closed' && (
        <div role="alert" className="flex items-center gap-3 border-b border-line bg-danger-soft px-4 py-1.5 text-xs text-danger">
          <span className="flex-1">
            The server refused an edit ({state.refusal.reason}). This copy of the file now differs from the server's.
          </span>
          <Button variant="ghost" className="px-2 py-0.5 text-xs" onClick={onReload}>
            Reload the file
          </Button>
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
          language={file.language}
          synced={state?.synced ?? true}
          // Nothing may be typed before the first sync: it would merge into the real content at random.
          // Nor after a refusal: this copy already differs from the server's until it is reloaded.
          readOnly={!canEdit || state?.status === 'closed' || (state !== null && (!state.synced || state.refusal !== null))}
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
