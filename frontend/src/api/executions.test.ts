import { describe, expect, it } from 'vitest'
import { ApiError } from './client'
import { languageFor, readRun, SseParser, type Language } from './executions'

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

const result = { id: 'r1', status: 'ok', stdout: 'a\nb\n', exit_code: 0 }

describe('SseParser', () => {
  it('reads events split anywhere, with CRLF, comments and multi-line data', () => {
    const parser = new SseParser()
    expect(parser.push('event: std')).toEqual([])
    expect(parser.push('out\r\ndata: {"text":"hi"}\r\n\r\n:keep-alive\n\nevent: x\ndata: one\ndata: two\n')).toEqual([
      { event: 'stdout', data: '{"text":"hi"}' },
    ])
    expect(parser.push('\n')).toEqual([{ event: 'x', data: 'one\ntwo' }])
  })
})

describe('readRun', () => {
  it('passes output on in order and resolves with the result', async () => {
    const seen: string[] = []
    const response = streamOf([
      'event: stdout\ndata: {"text":"a\\n"}\n\nevent: stde',
      'rr\ndata: {"text":"oops"}\n\n',
      'event: stdout\ndata: {"text":"b\\n"}\n\n',
      `event: result\ndata: ${JSON.stringify(result)}\n\n`,
    ])
    const got = await readRun(response, { onOutput: (stream, text) => seen.push(`${stream}:${text}`) })
    expect(seen).toEqual(['stdout:a\n', 'stderr:oops', 'stdout:b\n'])
    expect(got).toEqual(result)
  })

  it('turns an error event into an ApiError and a cut stream into a clear one', async () => {
    const failing = streamOf(['event: error\ndata: {"error":{"code":"internal","message":"the service failed"}}\n\n'])
    await expect(readRun(failing, { onOutput: () => {} })).rejects.toMatchObject({ code: 'internal' })
    const cut = streamOf(['event: stdout\ndata: {"text":"a"}\n\n'])
    const error = await readRun(cut, { onOutput: () => {} }).catch((thrown: unknown) => thrown)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).code).toBe('stream_ended')
  })
})

describe('languageFor', () => {
  const languages: Language[] = [
    { name: 'python', version: 'Python 3.11', extensions: ['py'], available: true },
    { name: 'cpp', version: '', extensions: ['cpp', 'cc'], available: false },
  ]
  it('finds the language by extension, case-insensitively', () => {
    expect(languageFor('Main.PY', languages)?.name).toBe('python')
    expect(languageFor('x.cc', languages)?.name).toBe('cpp')
    expect(languageFor('README', languages)).toBeNull()
    expect(languageFor('.py', languages)).toBeNull()
    expect(languageFor('notes.md', languages)).toBeNull()
  })
})
