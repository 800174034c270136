import { describe, expect, it } from 'vitest'
import { readAnswer, splitAnswer } from './assistant'

function streamOf(chunks: string[]): Response {
  const encoder = new TextEncoder()
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk))
      controller.close()
    },
  })
  return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } })
}

describe('readAnswer', () => {
  it('reports the id first, then each token, and resolves with the figures', async () => {
    const seen: string[] = []
    const done = {
      interaction_id: 'i1',
      provider: 'openai',
      model: 'm',
      latency_ms: 5,
      time_to_first_token_ms: 2,
      input_tokens: 3,
      output_tokens: 2,
    }
    const answer = await readAnswer(
      streamOf([
        'event: start\ndata: {"interaction_id":"i1"}\n\nevent: tok',
        'en\ndata: {"text":"Hel"}\n\nevent: token\ndata: {"text":"lo"}\n\n',
        `event: done\ndata: ${JSON.stringify(done)}\n\n`,
      ]),
      { onStart: (id) => seen.push(`start:${id}`), onToken: (text) => seen.push(text) },
    )
    expect(seen).toEqual(['start:i1', 'Hel', 'lo'])
    expect(answer).toEqual(done)
  })

  it('turns an error event into its code', async () => {
    const failing = streamOf([
      'event: start\ndata: {"interaction_id":"i"}\n\nevent: error\ndata: {"error":{"code":"ai_overloaded","message":"the AI provider is overloaded"}}\n\n',
    ])
    await expect(readAnswer(failing, { onStart: () => {}, onToken: () => {} })).rejects.toMatchObject({ code: 'ai_overloaded' })
  })
})

describe('splitAnswer', () => {
  it('cuts prose and fenced code, also while a block is still streaming', () => {
    expect(splitAnswer('Use this:\n```python\nprint(1)\n```\nDone.')).toEqual([
      { kind: 'text', text: 'Use this:\n' },
      { kind: 'code', language: 'python', code: 'print(1)' },
      { kind: 'text', text: 'Done.' },
    ])
    expect(splitAnswer('```js\nlet a')).toEqual([{ kind: 'code', language: 'js', code: 'let a' }])
    expect(splitAnswer('no code')).toEqual([{ kind: 'text', text: 'no code' }])
  })
})
