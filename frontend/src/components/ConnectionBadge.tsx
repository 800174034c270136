import type { FileConnectionState } from '../collab/fileSession'

/** The editor's connection and save state in a few words, announced politely to screen readers. */
export function describeConnection(state: FileConnectionState): { label: string; tone: 'ok' | 'warn' | 'danger' | 'muted' } {
  switch (state.status) {
    case 'connected':
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

export function ConnectionBadge({ state }: { state: FileConnectionState }) {
  const { label, tone } = describeConnection(state)
  return (
    <span
      role="status"
      aria-live="polite"
      data-testid="connection-status"
      data-status={state.status}
      className="inline-flex items-center gap-1.5 text-xs text-muted"
    >
      <span className={`h-2 w-2 rounded-full ${toneStyles[tone]}`} aria-hidden="true" />
      {label}
    </span>
  )
}
