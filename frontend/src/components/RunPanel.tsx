// The run panel under the editor: Run/Stop, stdin, the output as it streams in, and the
// result's status, exit code, time and memory.

import { useEffect, useRef, useState } from 'react'
import type { ExecutionResult } from '../api/executions'
import { useRuns, type RunState } from '../state/runs'
import { Button, IconButton } from './ui'
import { CloseIcon, PlayIcon, StopIcon } from './icons'

const statusWords: Record<ExecutionResult['status'], string> = {
  ok: 'Finished',
  compile_error: 'Compile error',
  runtime_error: 'Runtime error',
  time_limit: 'Time limit exceeded',
  memory_limit: 'Memory limit exceeded',
  output_limit: 'Output limit exceeded',
  internal_error: 'The sandbox failed',
}

export function describeResult(result: ExecutionResult): { label: string; tone: 'ok' | 'danger' | 'warn' } {
  const words = statusWords[result.status] ?? result.status
  const tone = result.status === 'ok' ? 'ok' : result.status === 'runtime_error' || result.status === 'compile_error' ? 'danger' : 'warn'
  if (result.status === 'ok' || result.status === 'runtime_error') {
    const ending = result.signal > 0 ? `signal ${result.signal}` : `exit ${result.exit_code}`
    return { label: `${words} · ${ending}`, tone }
  }
  return { label: words, tone }
}

export function formatMemory(bytes: number): string {
  if (bytes <= 0) return '—'
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KiB`
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`
}

const toneText = { ok: 'text-ok', danger: 'text-danger', warn: 'text-warn' }

export function RunPanel({
  fileId,
  filename,
  runnable,
  onRun,
  onClose,
}: {
  fileId: string
  filename: string
  /** Why this file cannot run here, or null when it can. */
  runnable: string | null
  onRun: () => void
  onClose: () => void
}) {
  const run: RunState | undefined = useRuns((state) => state.runs[fileId])
  const stdin = useRuns((state) => state.stdin[fileId] ?? '')
  const setStdin = useRuns((state) => state.setStdin)
  const stop = useRuns((state) => state.stop)
  const [stdinOpen, setStdinOpen] = useState(stdin !== '')
  const outputRef = useRef<HTMLPreElement>(null)
  const busy = run?.phase === 'saving' || run?.phase === 'running'

  // Follow the output while it grows, unless the reader scrolled up to read.
  const shown = run?.shownCharacters ?? 0
  useEffect(() => {
    const element = outputRef.current
    if (!element) return
    const nearBottom = element.scrollHeight - element.scrollTop - element.clientHeight < 48
    if (nearBottom) element.scrollTop = element.scrollHeight
  }, [shown])

  return (
    <section aria-label="Run" data-testid="run-panel" className="flex h-64 shrink-0 flex-col border-t border-line bg-panel">
      <div className="flex h-9 shrink-0 items-center gap-2 border-b border-line px-2">
        {busy ? (
          <Button variant="secondary" className="px-2 py-1 text-xs" onClick={() => stop(fileId)}>
            <StopIcon /> Stop
          </Button>
        ) : (
          <Button
            variant="primary"
            className="px-2 py-1 text-xs"
            onClick={onRun}
            disabled={runnable !== null}
            title={runnable ?? `Run ${filename} (Ctrl+Enter)`}
            aria-keyshortcuts="Control+Enter Meta+Enter"
          >
            <PlayIcon /> Run
          </Button>
        )}
        <Button variant="ghost" className="px-2 py-1 text-xs" aria-expanded={stdinOpen} onClick={() => setStdinOpen((open) => !open)}>
          Input{stdin !== '' ? ' •' : ''}
        </Button>
        <RunSummary run={run} />
        <IconButton label="Close the run panel" className="ml-auto" onClick={onClose}>
          <CloseIcon />
        </IconButton>
      </div>
      <div className="flex min-h-0 flex-1">
        {stdinOpen && (
          <label className="flex w-64 shrink-0 flex-col border-r border-line text-xs text-muted">
            <span className="px-2 pt-1.5 pb-1">Standard input</span>
            <textarea
              data-testid="run-stdin"
              value={stdin}
              onChange={(event) => setStdin(fileId, event.target.value)}
              spellCheck={false}
              className="min-h-0 flex-1 resize-none bg-canvas px-2 py-1 font-mono text-[13px] text-fg outline-none focus:ring-1 focus:ring-accent"
              placeholder="Text the program reads from stdin"
            />
          </label>
        )}
        <pre
          ref={outputRef}
          role="log"
          aria-live="polite"
          aria-label="Program output"
          data-testid="run-output"
          tabIndex={0}
          className="min-h-0 flex-1 overflow-auto bg-canvas px-3 py-2 font-mono text-[13px] leading-5 whitespace-pre-wrap text-fg"
        >
          {run === undefined && (
            <span className="text-faint">{runnable ?? 'Press Run or Ctrl+Enter to run this file; its output appears here.'}</span>
          )}
          {run?.output.map((chunk, index) => (
            <span key={index} className={chunk.stream === 'stderr' ? 'text-danger' : undefined}>
              {chunk.text}
            </span>
          ))}
          {run?.result && (run.result.stdout_truncated || run.result.stderr_truncated) && (
            <span className="block text-warn">[output cut at the limit]</span>
          )}
          {run?.error && (
            <span role="alert" className="block text-danger">
              {run.error}
            </span>
          )}
        </pre>
      </div>
    </section>
  )
}

function RunSummary({ run }: { run: RunState | undefined }) {
  if (run === undefined) return null
  if (run.phase === 'saving') return <span className="text-xs text-muted">Saving your edits first…</span>
  if (run.phase === 'running') return <span className="text-xs text-muted">Running…</span>
  if (run.phase === 'stopped') return <span className="text-xs text-muted">Stopped</span>
  if (run.phase === 'failed' || run.result === null) return <span className="text-xs text-danger">Not run</span>
  const { label, tone } = describeResult(run.result)
  return (
    <span className="flex items-center gap-3 text-xs" data-testid="run-status">
      <span className={`font-medium ${toneText[tone]}`}>{label}</span>
      <span className="text-muted">{run.result.wall_time_ms} ms</span>
      <span className="text-muted">{formatMemory(run.result.peak_memory_bytes)}</span>
    </span>
  )
}
