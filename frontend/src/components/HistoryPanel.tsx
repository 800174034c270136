// The history side panel: the open file's versions as a timeline (save one with a message, or
// Ctrl/Cmd+S anywhere in the room), and the room's activity log. Choosing a version opens it in
// the main area (VersionView) beside the live file, where it can be restored.

import { useState, type FormEvent } from 'react'
import { describeError } from '../api/client'
import { authorsLabel, useRoomEvents, useSaveVersion, useVersions, type RoomEvent, type Version } from '../api/history'
import type { FileEntry } from '../api/types'
import { relativeTime } from '../format'
import { Button, EmptyState, ErrorState, Spinner } from './ui'

const kindWords: Record<Version['kind'], string> = { save: 'Saved', checkpoint: 'Checkpoint', restore: 'Restored' }

export function HistoryPanel({
  roomId,
  file,
  canEdit,
  selectedVersionId,
  onSelect,
}: {
  roomId: string
  file: FileEntry | null
  canEdit: boolean
  selectedVersionId: string | null
  onSelect: (version: Version) => void
}) {
  const [tab, setTab] = useState<'versions' | 'activity'>('versions')
  return (
    <div className="flex min-h-0 flex-1 flex-col">
      <div role="tablist" aria-label="History" className="flex shrink-0 gap-1 border-b border-line px-2 pt-2">
        {(['versions', 'activity'] as const).map((name) => (
          <button
            key={name}
            type="button"
            role="tab"
            aria-selected={tab === name}
            onClick={() => setTab(name)}
            className={`rounded-t-md px-3 py-1.5 text-xs font-medium capitalize ${tab === name ? 'bg-canvas text-fg shadow-[inset_0_-2px_0_var(--cs-accent)]' : 'text-muted hover:text-fg'}`}
          >
            {name}
          </button>
        ))}
      </div>
      {tab === 'versions' ? (
        file ? (
          <Versions key={file.id} file={file} canEdit={canEdit} selectedVersionId={selectedVersionId} onSelect={onSelect} />
        ) : (
          <EmptyState title="No file is open">Open a file to see its versions.</EmptyState>
        )
      ) : (
        <Activity roomId={roomId} />
      )}
    </div>
  )
}

function Versions({
  file,
  canEdit,
  selectedVersionId,
  onSelect,
}: {
  file: FileEntry
  canEdit: boolean
  selectedVersionId: string | null
  onSelect: (version: Version) => void
}) {
  const versions = useVersions(file.id)
  const save = useSaveVersion(file.id)
  const [message, setMessage] = useState('')
  const submit = (event: FormEvent) => {
    event.preventDefault()
    save.mutate(message, { onSuccess: () => setMessage('') })
  }
  return (
    <div className="flex min-h-0 flex-1 flex-col">
      {canEdit && (
        <form onSubmit={submit} className="flex shrink-0 flex-col gap-2 border-b border-line p-3">
          <label htmlFor="version-message" className="text-xs font-medium text-muted">
            Save {file.filename} as a version
          </label>
          <div className="flex gap-2">
            <input
              id="version-message"
              value={message}
              maxLength={500}
              onChange={(event) => setMessage(event.target.value)}
              placeholder="What changed (optional)"
              className="min-w-0 flex-1 rounded-md border border-line bg-canvas px-2 py-1 text-sm text-fg placeholder:text-faint focus:border-accent focus:outline-none"
            />
            <Button
              type="submit"
              variant="primary"
              busy={save.isPending}
              aria-keyshortcuts="Control+S Meta+S"
              title="Save a version (Ctrl+S)"
            >
              Save
            </Button>
          </div>
          {save.isError && <p className="text-xs text-danger">{describeError(save.error)}</p>}
        </form>
      )}
      <div className="min-h-0 flex-1 overflow-y-auto" data-testid="version-list">
        {versions.isPending && (
          <div className="p-3">
            <Spinner label="Loading versions…" />
          </div>
        )}
        {versions.isError && versions.data === undefined && (
          <ErrorState message={describeError(versions.error)} onRetry={() => void versions.refetch()} />
        )}
        {versions.data?.length === 0 && (
          <EmptyState title="No versions yet">
            {canEdit
              ? 'Save one with Ctrl+S; checkpoints are also taken when editing pauses.'
              : 'Checkpoints are taken when editing pauses.'}
          </EmptyState>
        )}
        <ol className="relative ml-4 border-l border-line py-2" aria-label={`Versions of ${file.filename}`}>
          {versions.data?.map((version) => {
            const selected = version.id === selectedVersionId
            return (
              <li key={version.id} className="relative pl-4">
                <span
                  aria-hidden="true"
                  className={`absolute top-3.5 -left-[5px] h-2.5 w-2.5 rounded-full border-2 border-panel ${version.kind === 'restore' ? 'bg-warn' : version.kind === 'save' ? 'bg-accent' : 'bg-faint'}`}
                />
                <button
                  type="button"
                  onClick={() => onSelect(version)}
                  aria-current={selected || undefined}
                  data-testid={`version-${version.number}`}
                  className={`my-0.5 flex w-[calc(100%-0.5rem)] flex-col gap-0.5 rounded-md px-2 py-1.5 text-left text-xs ${selected ? 'bg-accent-soft' : 'hover:bg-hover'}`}
                >
                  <span className="flex items-center gap-2">
                    <span className="font-semibold text-fg">v{version.number}</span>
                    <span className="text-muted">{kindWords[version.kind]}</span>
                    <span className="ml-auto font-mono text-[11px]">
                      <span className={selected ? 'text-fg' : 'text-ok'}>+{version.lines_added}</span>{' '}
                      <span className={selected ? 'text-fg' : 'text-danger'}>−{version.lines_removed}</span>
                    </span>
                  </span>
                  {version.message && <span className="truncate text-fg">{version.message}</span>}
                  <span className="text-muted">
                    {authorsLabel(version)} · <time dateTime={version.created_at}>{relativeTime(version.created_at)}</time>
                  </span>
                </button>
              </li>
            )
          })}
        </ol>
      </div>
    </div>
  )
}

/** One line of the room's log, in words. */
export function describeRoomEvent(event: RoomEvent): string {
  const data = event.metadata as Record<string, string | number | null | undefined>
  const who = (data.by_username as string) || 'Someone'
  switch (event.type) {
    case 'room_created':
      return `${who} created the room`
    case 'member_joined':
      return `${who} joined with the invite code`
    case 'member_role_changed':
      return `${who} made a member ${data.role ?? 'something else'}`
    case 'member_removed':
      return data.by === data.user_id ? `${who} left the room` : `${who} removed a member`
    case 'file_created':
      return `${who} created ${data.filename ?? 'a file'}`
    case 'file_renamed':
      return `${who} renamed ${data.old_filename ?? 'a file'} to ${data.filename ?? '?'}`
    case 'file_deleted':
      return `${who} deleted ${data.filename ?? 'a file'}`
    case 'version_created':
      if (data.kind === 'checkpoint') return `${who} edited a file (checkpoint v${data.number})`
      if (data.kind === 'restore') return `${who} restored an old version (now v${data.number})`
      return `${who} saved v${data.number}`
    case 'execution_finished':
      return `A ${data.language ?? ''} run ended: ${data.status ?? ''}`
    default:
      // A kind this build of the app does not know yet.
      return (event.type as string).replace(/_/g, ' ')
  }
}

function Activity({ roomId }: { roomId: string }) {
  const events = useRoomEvents(roomId)
  if (events.isPending)
    return (
      <div className="p-3">
        <Spinner label="Loading the room's activity…" />
      </div>
    )
  if (events.isError && events.data === undefined)
    return <ErrorState message={describeError(events.error)} onRetry={() => void events.refetch()} />
  if (events.data?.length === 0) return <EmptyState title="Nothing has happened yet" />
  return (
    <ul className="min-h-0 flex-1 overflow-y-auto p-2 text-xs" data-testid="room-activity">
      {events.data?.map((event) => (
        <li key={event.id} className="flex flex-col gap-0.5 rounded-md px-2 py-1.5 hover:bg-hover">
          <span className="text-fg">{describeRoomEvent(event)}</span>
          <time className="text-muted" dateTime={event.created_at}>
            {relativeTime(event.created_at)}
          </time>
        </li>
      ))}
    </ul>
  )
}
