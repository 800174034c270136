// Running code: the languages the server runs, and a run whose output streams in as
// server-sent events from POST /api/executions/stream.

import { useQuery } from '@tanstack/react-query'
import { ApiError } from './client'
import { api } from '../state/session'
import type { Schemas } from './types'

export type ExecutionStatus = ExecutionResult['status']
export type ExecutionResult = Schemas['ExecutionBody']
export type Language = Schemas['LanguageBody']

export type LanguageList = Schemas['LanguageListBody']

/** The languages the server runs, and why it runs none when it cannot run code at all. */
export function useLanguages() {
  return useQuery({
    queryKey: ['executions', 'languages'],
    staleTime: Infinity,
    queryFn: ({ signal }) => api.get<LanguageList>('/api/executions/languages', signal),
  })
}

/** The installed language that runs `filename`, by its extension. */
export function languageFor(filename: string, languages: Language[]): Language | null {
  const dot = filename.lastIndexOf('.')
  if (dot <= 0) return null
  const extension = filename.slice(dot + 1).toLowerCase()
  return languages.find((language) => language.extensions.includes(extension)) ?? null
}

export interface SseEvent {
  event: string
  data: string
}

/** Splits a text/event-stream into events, whatever the chunks it arrives in. */
export class SseParser {
  private buffered = ''

  push(text: string): SseEvent[] {
    this.buffered += text.replace(/\r\n?/g, '\n')
    const events: SseEvent[] = []
    let end = this.buffered.indexOf('\n\n')
    while (end !== -1) {
      const block = this.buffered.slice(0, end)
      this.buffered = this.buffered.slice(end + 2)
      let name = 'message'
      const data: string[] = []
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue
        const colon = line.indexOf(':')
        const field = colon === -1 ? line : line.slice(0, colon)
        let value = colon === -1 ? '' : line.slice(colon + 1)
        if (value.startsWith(' ')) value = value.slice(1)
        if (field === 'event') name = value
        else if (field === 'data') data.push(value)
      }
      if (data.length > 0) events.push({ event: name, data: data.join('\n') })
      end = this.buffered.indexOf('\n\n')
    }
    return events
  }
}

export interface RunHandlers {
  onOutput: (stream: 'stdout' | 'stderr', text: string) => void
}

/**
 * Runs a room's file (its live content, with the room's other files beside it) and passes its
 * output on as it comes; resolves with the result. Aborting `signal` kills the run on the server.
 */
export async function runFile(fileId: string, stdin: string, handlers: RunHandlers, signal: AbortSignal): Promise<ExecutionResult> {
  const response = await api.openStream('/api/executions/stream', { file_id: fileId, stdin }, signal)
  return readRun(response, handlers)
}

export async function readRun(response: Response, handlers: RunHandlers): Promise<ExecutionResult> {
  if (response.body === null) throw new ApiError(0, 'no_stream', 'the server sent no output stream')
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  const parser = new SseParser()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    for (const event of parser.push(value)) {
      const data = JSON.parse(event.data) as unknown
      if (event.event === 'stdout' || event.event === 'stderr') {
        handlers.onOutput(event.event, (data as { text: string }).text)
      } else if (event.event === 'result') {
        return data as ExecutionResult
      } else if (event.event === 'error') {
        const error = (data as { error: { code: string; message: string } }).error
        throw new ApiError(500, error.code, error.message)
      }
    }
  }
  throw new ApiError(0, 'stream_ended', 'the connection ended before the run did; its result is lost')
}
