// The AI assistant: whether a provider is configured, and answers streamed as server-sent
// events from POST /api/ai/stream, stopped with POST /api/ai/cancel/{id}.

import { useQuery } from '@tanstack/react-query'
import { ApiError } from './client'
import { SseParser } from './executions'
import { api } from '../state/session'
import type { Schemas } from './types'

export const MODES = ['chat', 'explain', 'generate', 'complete', 'review', 'debug', 'refactor', 'docs'] as const
export type Mode = (typeof MODES)[number]

export type AssistantStatus = Schemas['AssistantStatusBody']

export interface AskBody {
  mode: Mode
  file_id?: string
  code?: string
  language?: string
  selection?: { start: { line: number; column: number }; end: { line: number; column: number } }
  cursor?: { line: number; column: number }
  prompt?: string
  /** Earlier turns of the conversation, oldest first (the server keeps the latest that fit). */
  history?: { role: 'user' | 'assistant'; text: string }[]
}

export interface AnswerDone {
  interaction_id: string
  provider: string
  model: string
  latency_ms: number
  time_to_first_token_ms: number
  input_tokens: number
  output_tokens: number
}

export interface AnswerHandlers {
  onStart: (interactionId: string) => void
  onToken: (text: string) => void
}

export function useAssistantStatus() {
  return useQuery({
    queryKey: ['ai', 'status'],
    staleTime: 60_000,
    queryFn: ({ signal }) => api.get<AssistantStatus>('/api/ai/status', signal),
  })
}

/** Asks, passes the answer on as it streams in, and resolves when it is complete. */
export async function ask(body: AskBody, handlers: AnswerHandlers, signal: AbortSignal): Promise<AnswerDone> {
  const response = await api.openStream('/api/ai/stream', body, signal)
  return readAnswer(response, handlers)
}

export async function readAnswer(response: Response, handlers: AnswerHandlers): Promise<AnswerDone> {
  if (response.body === null) throw new ApiError(0, 'no_stream', 'the server sent no answer stream')
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  const parser = new SseParser()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    for (const event of parser.push(value)) {
      const data = JSON.parse(event.data) as Record<string, unknown>
      if (event.event === 'start') handlers.onStart(String(data.interaction_id))
      else if (event.event === 'token') handlers.onToken(String(data.text))
      else if (event.event === 'done') return data as unknown as AnswerDone
      else if (event.event === 'error') {
        const error = data.error as { code: string; message: string }
        throw new ApiError(502, error.code, error.message)
      }
    }
  }
  throw new ApiError(0, 'stream_ended', 'the connection ended before the answer did')
}

/** Stops an answer on the server (and its request to the provider). */
export function cancelAnswer(interactionId: string): Promise<void> {
  return api.post<void>(`/api/ai/cancel/${encodeURIComponent(interactionId)}`, {})
}

/** The answer cut into prose and fenced code blocks (an unclosed fence is code still streaming). */
export type AnswerPart = { kind: 'text'; text: string } | { kind: 'code'; language: string; code: string }

export function splitAnswer(answer: string): AnswerPart[] {
  const parts: AnswerPart[] = []
  const fence = /^```([^\n`]*)\n/m
  let rest = answer
  for (;;) {
    const opening = fence.exec(rest)
    if (opening === null) {
      if (rest.length > 0) parts.push({ kind: 'text', text: rest })
      return parts
    }
    if (opening.index > 0) parts.push({ kind: 'text', text: rest.slice(0, opening.index) })
    const body = rest.slice(opening.index + opening[0].length)
    const closing = body.search(/^```[ \t]*$/m)
    if (closing === -1) {
      parts.push({ kind: 'code', language: opening[1].trim(), code: body })
      return parts
    }
    parts.push({ kind: 'code', language: opening[1].trim(), code: body.slice(0, closing).replace(/\n$/, '') })
    rest = body.slice(closing).replace(/^```[ \t]*\n?/, '')
  }
}
