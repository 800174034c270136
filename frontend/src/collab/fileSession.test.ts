import { describe, expect, it } from 'vitest'
import { closeReason, webSocketBase } from './fileSession'

describe('file sessions', () => {
  it('explain why the server ended them', () => {
    expect(closeReason(4404, 'the file was deleted')).toBe('This file was deleted.')
    expect(closeReason(1008, 'you were removed from the room')).toBe('You were removed from the room.')
    expect(closeReason(1009, '')).toMatch(/too large/)
    expect(closeReason(1011, '')).toBe('The server closed the connection (1011).')
  })

  it('connect with wss on https pages', () => {
    expect(webSocketBase({ protocol: 'https:', host: 'code.example:8443' })).toBe('wss://code.example:8443')
    expect(webSocketBase({ protocol: 'http:', host: '127.0.0.1:8080' })).toBe('ws://127.0.0.1:8080')
  })
})
