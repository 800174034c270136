// A version of the open file beside the live file (or the version before it), with the changes
// marked; and its restore: after a confirmation, the file becomes that version again for
// everyone in the room, as one edit they all see arrive.

import { useCallback, useState, useSyncExternalStore } from 'react'
import { ApiError, describeError } from '../api/client'
import { authorsLabel, useRestoreVersion, useVersionContent, type Version } from '../api/history'
import type { FileEntry } from '../api/types'
import type { FileSession } from '../collab/fileSession'
import { VersionDiff } from '../editor/VersionDiff'
import { relativeTime } from '../format'
import { Button, Dialog, ErrorState, IconButton, Spinner } from './ui'
import { CloseIcon } from './icons'

/** The live text of a session, re-read on every change. */
function useLiveText(session: FileSession | null): string | null {
  const subscribe = useCallback(
    (listener: () => void) => {
      if (!session) return () => {}
      session.text.observe(listener)
      return () => session.text.unobserve(listener)
    },
    [session],
  )
  return useSyncExternalStore(subscribe, () => (session ? session.text.toString() : null))
}

export function VersionView({
  version,
  versions,
  file,
  session,
  canEdit,
  onClose,
}: {
  version: Version
  /** The file's versions, newest first: the head, and the version before this one. */
  versions: Version[]
  file: FileEntry
  session: FileSession | null
  canEdit: boolean
  onClose: () => void
}) {
  const previous = versions.find((candidate) => candidate.number === version.number - 1) ?? null
  const head = versions[0]?.number ?? version.number
  const [chosenAgainst, setAgainst] = useState<'current' | 'previous'>('current')
  // Without a live session (it may come later, or go), only versions can be compared.
  const against = session ? chosenAgainst : 'previous'
  const chosen = useVersionContent(version.id)
  const before = useVersionContent(against === 'previous' && previous ? previous.id : null)
  const live = useLiveText(session)
  const restore = useRestoreVersion(file.id)
  const [confirming, setConfirming] = useState(false)

  const original = against === 'previous' ? (before.data?.content ?? '') : (chosen.data?.content ?? '')
  const modified = against === 'previous' ? (chosen.data?.content ?? '') : (live ?? '')
  const loading = chosen.isPending || (against === 'previous' && previous !== null && before.isPending)
  const stale = restore.error instanceof ApiError && restore.error.code === 'stale_head'

  return (
    <section className="absolute inset-0 z-20 flex flex-col bg-canvas" aria-label={`Version ${version.number} of ${file.filename}`}>
      <header className="flex shrink-0 flex-wrap items-center gap-3 border-b border-line bg-panel px-3 py-2 text-xs">
        <h2 className="text-sm font-semibold text-fg">
          {file.filename} · v{version.number}
        </h2>
        <span className="text-muted">
          {authorsLabel(version)} · {relativeTime(version.created_at)}
          {version.message && <> · “{version.message}”</>}
        </span>
        <label className="ml-auto flex items-center gap-1.5 text-muted">
          Compare
          <select
            value={against}
            onChange={(event) => setAgainst(event.target.value as 'current' | 'previous')}
            className="rounded-md border border-line bg-canvas px-1.5 py-1 text-xs text-fg"
          >
            {session && <option value="current">this version with the file now</option>}
            <option value="previous" disabled={previous === null}>
              the version before with this one
            </option>
          </select>
        </label>
        {canEdit && session && (
          <Button
            variant="primary"
            className="px-2 py-1 text-xs"
            onClick={() => {
              restore.reset()
              setConfirming(true)
            }}
            data-testid="restore-version"
          >
            Restore this version
          </Button>
        )}
        <IconButton label="Close the version" onClick={onClose}>
          <CloseIcon />
        </IconButton>
      </header>
      <div className="flex shrink-0 border-b border-line text-[11px] text-faint">
        <span className="flex-1 px-3 py-1">
          {against === 'previous' ? (previous ? `v${previous.number}` : '(nothing before)') : `v${version.number}`}
        </span>
        <span className="flex-1 px-3 py-1">{against === 'previous' ? `v${version.number}` : 'the file now (live)'}</span>
      </div>
      <div className="relative min-h-0 flex-1">
        {loading && (
          <div className="absolute inset-0 z-10 flex items-center justify-center">
            <Spinner label="Loading the version…" />
          </div>
        )}
        {chosen.isError && <ErrorState message={describeError(chosen.error)} onRetry={() => void chosen.refetch()} />}
        {!chosen.isError && <VersionDiff original={original} modified={modified} language={file.language} />}
      </div>
      <Dialog open={confirming} title={`Restore version ${version.number}?`} onClose={() => setConfirming(false)}>
        <p className="text-sm text-muted">
          {file.filename} becomes what it was at version {version.number}, for everyone in the room at once. The file as it is now is kept
          in the history first, so nothing is lost.
        </p>
        {restore.isError && (
          <p role="alert" className="text-sm text-danger">
            {stale ? 'Someone saved a newer version meanwhile. Look at the list again before restoring.' : describeError(restore.error)}
          </p>
        )}
        <div className="flex justify-end gap-2">
          <Button onClick={() => setConfirming(false)}>Cancel</Button>
          <Button
            variant="primary"
            busy={restore.isPending}
            disabled={stale}
            data-testid="confirm-restore"
            onClick={() =>
              restore.mutate(
                { versionId: version.id, expectedHead: head },
                {
                  onSuccess: () => {
                    setConfirming(false)
                    onClose()
                  },
                },
              )
            }
          >
            Restore
          </Button>
        </div>
      </Dialog>
    </section>
  )
}
