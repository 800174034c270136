// The assistant's conversation in each room, kept for the session: each question, its answer
// as it streams in, and how it ended.

import { create } from 'zustand'
import { describeError } from '../api/client'
import type { AnswerDone, AnswerHandlers, AskBody, Mode } from '../api/assistant'

export interface Turn {
  id: number
  mode: Mode
  prompt: string
  /** The file it was about, for the reader. */
  filename: string | null
  answer: string
  status: 'streaming' | 'done' | 'failed' | 'stopped'
  error: string | null
  interactionId: string | null
  figures: AnswerDone | null
}

export type Asker = (body: AskBody, handlers: AnswerHandlers, signal: AbortSignal) => Promise<AnswerDone>
export type Canceller = (interactionId: string) => Promise<void>

interface AssistantState {
  turns: Record<string, Turn[]>
  ask: (roomId: string, body: AskBody, filename: string | null, asker: Asker) => Promise<void>
  stop: (roomId: string, turnId: number, canceller: Canceller) => void
  clear: (roomId: string) => void
}

/** The conversation so far as the API takes it: each finished question and its answer. */
export function historyOf(turns: Turn[]): NonNullable<AskBody['history']> {
  return turns
    .filter((turn) => turn.status === 'done' && turn.prompt !== '')
    .flatMap((turn) => [
      { role: 'user' as const, text: turn.prompt },
      { role: 'assistant' as const, text: turn.answer },
    ])
}

let nextTurn = 1
const controllers = new Map<number, AbortController>()

export const useAssistant = create<AssistantState>()((set, get) => {
  const update = (roomId: string, turnId: number, change: (turn: Turn) => Turn) =>
    set((state) => ({
      turns: { ...state.turns, [roomId]: (state.turns[roomId] ?? []).map((turn) => (turn.id === turnId ? change(turn) : turn)) },
    }))
  return {
    turns: {},
    ask: async (roomId, body, filename, asker) => {
      const id = nextTurn++
      const turn: Turn = {
        id,
        mode: body.mode,
        prompt: body.prompt ?? '',
        filename,
        answer: '',
        status: 'streaming',
        error: null,
        interactionId: null,
        figures: null,
      }
      set((state) => ({ turns: { ...state.turns, [roomId]: [...(state.turns[roomId] ?? []), turn] } }))
      const controller = new AbortController()
      controllers.set(id, controller)
      try {
        const figures = await asker(
          body,
          {
            onStart: (interactionId) => update(roomId, id, (current) => ({ ...current, interactionId })),
            onToken: (text) => update(roomId, id, (current) => ({ ...current, answer: current.answer + text })),
          },
          controller.signal,
        )
        update(roomId, id, (current) => ({ ...current, status: 'done', figures }))
      } catch (error) {
        if (controller.signal.aborted) return
        update(roomId, id, (current) => ({ ...current, status: 'failed', error: describeError(error) }))
      } finally {
        controllers.delete(id)
      }
    },
    stop: (roomId, turnId, canceller) => {
      const turn = (get().turns[roomId] ?? []).find((candidate) => candidate.id === turnId)
      if (turn?.interactionId) void canceller(turn.interactionId).catch(() => {})
      controllers.get(turnId)?.abort()
      controllers.delete(turnId)
      update(roomId, turnId, (current) => ({ ...current, status: 'stopped' }))
    },
    clear: (roomId) => set((state) => ({ turns: { ...state.turns, [roomId]: [] } })),
  }
})
