// A stand-in OpenAI-compatible provider for the browser tests: POST /v1/chat/completions answers
// in OpenAI's streaming format (chunks, a usage chunk, [DONE]), a few characters every 25 ms.
// A prompt containing SLOW gets an answer that never ends (until the connection closes).

import { createServer, type Server } from 'node:http'

export const STAND_IN_ANSWER = "Here is the function:\n```python\ndef greet(name):\n    return f'hello {name}'\n```\nCall it with a name."

function chunk(content: string): string {
  return `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] })}\r\n\r\n`
}

export function startStandInProvider(): Promise<{ server: Server; baseUrl: string }> {
  const server = createServer((request, response) => {
    let body = ''
    request.on('data', (piece: Buffer) => (body += piece.toString()))
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/v1/chat/completions') {
        response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}')
        return
      }
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      const slow = body.includes('SLOW')
      const pieces = slow ? [] : (STAND_IN_ANSWER.match(/[\s\S]{1,8}/g) ?? [])
      let index = 0
      const timer = setInterval(() => {
        if (slow) {
          response.write(chunk(`tick${index++} `))
          return
        }
        if (index < pieces.length) {
          response.write(chunk(pieces[index++]))
          return
        }
        clearInterval(timer)
        response.write(
          `data: ${JSON.stringify({ id: 'c1', choices: [], usage: { prompt_tokens: 30, completion_tokens: pieces.length } })}\r\n\r\n`,
        )
        response.end('data: [DONE]\r\n\r\n')
      }, 25)
      response.on('close', () => clearInterval(timer))
    })
  })
  return new Promise((resolveStart) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      resolveStart({ server, baseUrl: `http://127.0.0.1:${port}/v1` })
    })
  })
}
