import type { FileConnectionState } from '../collab/fileSession'

/** The editor's connection and save state in a few words, announced politely to screen readers. */
export function describeConnection(state: FileConnectionState): { label: string; tone: 'ok' | 'warn' | 'danger' | 'muted' } {
  switch (state.status) {
    case 'connected':
      if (state.refusal) return { label: 'Not saved · an edit was refused', tone: 'danger' }
      if (!state.synced) return { label: 'Syncing…', tone: 'muted' }
      return state.hasUnsavedEdits ? { label: 'Saving…', tone: 'muted' } : { label: 'Connected · saved', tone: 'ok' }
    case 'connecting':
      return { label: 'Connecting…', tone: 'muted' }
    case 'reconnecting':
      return state.hasUnsavedEdits ? { label: 'Reconnecting · unsaved edits', tone: 'warn' } : { label: 'Reconnecting…', tone: 'warn' }
    case 'offline':
      return state.hasUnsavedEdits ? { label: 'Offline · unsaved edits kept here', tone: 'danger' } : { label: 'Offline', tone: 'danger' }
    case 'closed':
      return { label: state.closedReason ?? 'Disconnected', tone: 'danger' }
  }
}

const toneStyles = {
  ok: 'bg-ok',
  warn: 'bg-warn',
  danger: 'bg-danger',
  muted: 'bg-faint',
}

/**
 * What screen readers hear: connection changes only. The save state flips with every keystroke
 * and would be announced all the time.
 */
function announcement(state: FileConnectionState): string {
  switch (state.status) {
    case 'connected':
      return state.refusal ? 'Connected; the server refused an edit' : 'Connected'
    case 'connecting':
      return 'Connecting'
    case 'reconnecting':
      return 'Connection lost, reconnecting'
    case 'offline':
      return 'Offline; edits are kept in this tab'
    case 'closed':
      return state.closedReason ?? 'Disconnected'
  }
}

export function ConnectionBadge({ state }: { state: FileConnectionState }) {
  const { label, tone } = describeConnection(state)
  return (
    <>
      <span
        data-testid="connection-status"
        data-status={state.status}
        className="inline-flex items-center gap-1.5 text-xs text-muted"
        aria-hidden="true"
      >
        <span className={`h-2 w-2 rounded-full ${toneStyles[tone]}`} />
        {label}
      </span>
      <span role="status" className="sr-only">
        {announcement(state)}
      </span>
    </>
  )
}
