import { beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../api/client'
import { historyOf, useAssistant } from './assistant'

const figures = {
  interaction_id: 'i1',
  provider: 'openai',
  model: 'm',
  latency_ms: 9,
  time_to_first_token_ms: 3,
  input_tokens: 4,
  output_tokens: 2,
}

describe('assistant conversation', () => {
  beforeEach(() => useAssistant.setState({ turns: {} }))

  it('streams an answer into its turn and keeps the conversation per room', async () => {
    await useAssistant.getState().ask('room', { mode: 'explain', prompt: 'what?' }, 'main.py', async (_body, handlers) => {
      handlers.onStart('i1')
      handlers.onToken('It ')
      handlers.onToken('adds.')
      return figures
    })
    const [turn] = useAssistant.getState().turns.room
    expect(turn).toMatchObject({
      mode: 'explain',
      prompt: 'what?',
      filename: 'main.py',
      answer: 'It adds.',
      status: 'done',
      interactionId: 'i1',
      figures,
    })
    expect(useAssistant.getState().turns.other).toBeUndefined()
  })

  it('the history holds the finished questions and answers, oldest first', async () => {
    const answerWith = (text: string) => async (_body: unknown, handlers: { onToken: (text: string) => void }) => {
      handlers.onToken(text)
      return figures
    }
    await useAssistant.getState().ask('room', { mode: 'chat', prompt: 'first?' }, null, answerWith('One.'))
    await useAssistant.getState().ask('room', { mode: 'chat', prompt: 'second?' }, null, answerWith('Two.'))
    await useAssistant.getState().ask('room', { mode: 'chat', prompt: 'failing' }, null, async () => {
      throw new Error('no')
    })
    expect(historyOf(useAssistant.getState().turns.room)).toEqual([
      { role: 'user', text: 'first?' },
      { role: 'assistant', text: 'One.' },
      { role: 'user', text: 'second?' },
      { role: 'assistant', text: 'Two.' },
    ])
  })

  it('stop cancels on the server and aborts the stream; a failure keeps its sentence', async () => {
    const cancel = vi.fn(async () => {})
    let aborted = false
    const asking = useAssistant.getState().ask('room', { mode: 'chat', prompt: 'long' }, null, (_body, handlers, signal) => {
      handlers.onStart('i2')
      handlers.onToken('Partial')
      return new Promise((_, reject) =>
        signal.addEventListener('abort', () => {
          aborted = true
          reject(new DOMException('aborted', 'AbortError'))
        }),
      )
    })
    await Promise.resolve()
    const turn = useAssistant.getState().turns.room[0]
    useAssistant.getState().stop('room', turn.id, cancel)
    await asking
    expect(cancel).toHaveBeenCalledWith('i2')
    expect(aborted).toBe(true)
    expect(useAssistant.getState().turns.room[0]).toMatchObject({ status: 'stopped', answer: 'Partial' })

    await useAssistant.getState().ask('room', { mode: 'chat', prompt: 'x' }, null, async () => {
      throw new ApiError(502, 'ai_overloaded', 'the AI provider is overloaded; try again shortly')
    })
    expect(useAssistant.getState().turns.room[1]).toMatchObject({
      status: 'failed',
      error: 'The AI provider is overloaded; try again shortly.',
    })
  })
})
