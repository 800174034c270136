import { describe, expect, it } from 'vitest'
import { inviteCodeFromInput, inviteLink, safeNextPath } from './links'

describe('links', () => {
  it('follows only same-site paths after sign-in', () => {
    expect(safeNextPath('/rooms/1?file=2')).toBe('/rooms/1?file=2')
    for (const hostile of [
      null,
      '',
      'https://evil.example',
      '//evil.example',
      '/\\evil.example',
      'javascript:alert(1)',
      '/\t/evil.example',
      '/\n/evil.example',
      '/ /evil.example',
    ]) {
      expect(safeNextPath(hostile)).toBe('/')
    }
  })

  it('takes a code or a pasted invite link', () => {
    expect(inviteCodeFromInput('  AbC123 ')).toBe('AbC123')
    expect(inviteCodeFromInput('http://localhost:8080/join/AbC123')).toBe('AbC123')
    expect(inviteCodeFromInput('https://codesync.example/join/Ab%2DC/?ref=x')).toBe('Ab-C')
    expect(inviteCodeFromInput('https://x/join/%E0%A4%A')).toBe('%E0%A4%A')
    expect(inviteLink('http://localhost:8080', 'a/b')).toBe('http://localhost:8080/join/a%2Fb')
  })
})
