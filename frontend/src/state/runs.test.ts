import { beforeEach, describe, expect, it } from 'vitest'
import { ApiError } from '../api/client'
import type { ExecutionResult } from '../api/executions'
import { appendOutput, SHOWN_OUTPUT_LIMIT, useRuns, type RunState } from './runs'

const result = { id: 'r', status: 'ok', stdout: 'hi\n', exit_code: 0 } as ExecutionResult

describe('runs', () => {
  beforeEach(() => useRuns.setState({ runs: {}, stdin: {} }))

  it('streams output into the file’s run, then keeps the result, with the stdin typed for that file', async () => {
    useRuns.getState().setStdin('f1', 'input')
    let seenStdin = ''
    await useRuns.getState().start('f1', async (_file, stdin, onOutput) => {
      seenStdin = stdin
      onOutput('stdout', 'h')
      onOutput('stdout', 'i\n')
      onOutput('stderr', 'warn')
      return result
    })
    const run = useRuns.getState().runs.f1
    expect(seenStdin).toBe('input')
    expect(run.phase).toBe('finished')
    expect(run.output).toEqual([
      { stream: 'stdout', text: 'hi\n' },
      { stream: 'stderr', text: 'warn' },
    ])
    expect(run.result).toEqual(result)
  })

  it('stopping aborts the request and leaves the run stopped; a refusal is shown as a sentence', async () => {
    let aborted = false
    const running = useRuns.getState().start('f1', (_file, _stdin, onOutput, signal) => {
      onOutput('stdout', 'tick\n')
      return new Promise((_, reject) =>
        signal.addEventListener('abort', () => {
          aborted = true
          reject(new DOMException('aborted', 'AbortError'))
        }),
      )
    })
    await Promise.resolve()
    await Promise.resolve()
    useRuns.getState().stop('f1')
    await running
    expect(aborted).toBe(true)
    expect(useRuns.getState().runs.f1.phase).toBe('stopped')
    expect(useRuns.getState().runs.f1.output).toEqual([{ stream: 'stdout', text: 'tick\n' }])

    await useRuns.getState().start('f2', async () => {
      throw new ApiError(429, 'rate_limited', 'too many runs', 12)
    })
    expect(useRuns.getState().runs.f2).toMatchObject({ phase: 'failed', error: 'Too many runs. Try again in 12 s.' })
  })

  it('shows at most the output limit', () => {
    let run: RunState = { phase: 'running', output: [], shownCharacters: 0, result: null, error: null }
    run = appendOutput(run, 'stdout', 'x'.repeat(SHOWN_OUTPUT_LIMIT - 1))
    run = appendOutput(run, 'stderr', 'yy')
    run = appendOutput(run, 'stdout', 'zz')
    expect(run.shownCharacters).toBe(SHOWN_OUTPUT_LIMIT)
    expect(run.output[1]).toEqual({ stream: 'stderr', text: 'y' })
    expect(run.output).toHaveLength(2)
  })
})
