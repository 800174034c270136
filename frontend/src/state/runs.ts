// Runs of files in this tab: the output as it streams in, the result, and the stdin typed for
// each file. Kept per file for the session, so switching tabs keeps a run's output on screen.

import { create } from 'zustand'
import { describeError } from '../api/client'
import type { ExecutionResult } from '../api/executions'

export interface OutputChunk {
  stream: 'stdout' | 'stderr'
  text: string
}

export interface RunState {
  phase: 'saving' | 'running' | 'finished' | 'failed' | 'stopped'
  output: OutputChunk[]
  /** Characters shown; past `SHOWN_OUTPUT_LIMIT` the rest is dropped here (the result says if the server cut it). */
  shownCharacters: number
  result: ExecutionResult | null
  error: string | null
}

/** The server caps each stream at 1 MiB; the panel shows no more than both together. */
export const SHOWN_OUTPUT_LIMIT = 2 * 1024 * 1024

export type RunStarter = (
  fileId: string,
  stdin: string,
  onOutput: (stream: 'stdout' | 'stderr', text: string) => void,
  signal: AbortSignal,
) => Promise<ExecutionResult>

interface RunsState {
  runs: Record<string, RunState>
  stdin: Record<string, string>
  setStdin: (fileId: string, text: string) => void
  /** Starts a run of `fileId` after `beforeStart` (waiting for unsaved edits to reach the server). */
  start: (fileId: string, starter: RunStarter, beforeStart?: () => Promise<void>) => Promise<void>
  stop: (fileId: string) => void
}

const controllers = new Map<string, AbortController>()

export function appendOutput(run: RunState, stream: 'stdout' | 'stderr', text: string): RunState {
  const room = SHOWN_OUTPUT_LIMIT - run.shownCharacters
  if (room <= 0 || text.length === 0) return run
  const kept = text.length > room ? text.slice(0, room) : text
  const last = run.output[run.output.length - 1]
  // Consecutive text of one stream is one chunk: the list stays short however the output came.
  const output =
    last && last.stream === stream
      ? [...run.output.slice(0, -1), { stream, text: last.text + kept }]
      : [...run.output, { stream, text: kept }]
  return { ...run, output, shownCharacters: run.shownCharacters + kept.length }
}

export const useRuns = create<RunsState>()((set, get) => ({
  runs: {},
  stdin: {},
  setStdin: (fileId, text) => set((state) => ({ stdin: { ...state.stdin, [fileId]: text } })),
  start: async (fileId, starter, beforeStart) => {
    controllers.get(fileId)?.abort()
    const controller = new AbortController()
    controllers.set(fileId, controller)
    const update = (change: (run: RunState) => RunState) => {
      if (controllers.get(fileId) !== controller) return
      set((state) => {
        const run = state.runs[fileId]
        return run ? { runs: { ...state.runs, [fileId]: change(run) } } : state
      })
    }
    set((state) => ({
      runs: { ...state.runs, [fileId]: { phase: 'saving', output: [], shownCharacters: 0, result: null, error: null } },
    }))
    try {
      await beforeStart?.()
      if (controller.signal.aborted) return
      update((run) => ({ ...run, phase: 'running' }))
      const result = await starter(
        fileId,
        get().stdin[fileId] ?? '',
        (stream, text) => update((run) => appendOutput(run, stream, text)),
        controller.signal,
      )
      update((run) => ({ ...run, phase: 'finished', result }))
    } catch (error) {
      if (controller.signal.aborted) return
      update((run) => ({ ...run, phase: 'failed', error: describeError(error) }))
    } finally {
      if (controllers.get(fileId) === controller) controllers.delete(fileId)
    }
  },
  stop: (fileId) => {
    const controller = controllers.get(fileId)
    if (!controller) return
    controllers.delete(fileId)
    controller.abort()
    set((state) => {
      const run = state.runs[fileId]
      return run ? { runs: { ...state.runs, [fileId]: { ...run, phase: 'stopped' } } } : state
    })
  },
}))
