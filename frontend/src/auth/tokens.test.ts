import { describe, expect, it } from 'vitest'
import { accessTokenExpiry, expiresWithin, parseStoredTokens, refreshMargin } from './tokens'
import { fakeAccessToken } from '../testing/jwt'

describe('access token times', () => {
  it('reads exp in milliseconds, and nothing from a malformed token', () => {
    expect(accessTokenExpiry(fakeAccessToken({ exp: 1_700_000_000 }))).toBe(1_700_000_000_000)
    for (const bad of ['', 'a.b', 'a.!!!.c', `x.${btoa('"just a string"')}.y`, `x.${btoa('{"exp":"soon"}')}.y`]) {
      expect(accessTokenExpiry(bad)).toBeNull()
    }
  })

  it('refreshes a minute early, but never earlier than a quarter of a short lifetime', () => {
    const fifteenMinutes = fakeAccessToken({ iat: 1000, exp: 1000 + 900 })
    expect(refreshMargin(fifteenMinutes, 60_000)).toBe(60_000)
    const twentySeconds = fakeAccessToken({ iat: 1000, exp: 1020 })
    expect(refreshMargin(twentySeconds, 60_000)).toBe(5_000)
    expect(refreshMargin(fakeAccessToken({ exp: 1020 }), 60_000)).toBe(60_000)
  })

  it('counts a token as due within the margin, and an unreadable one as due at once', () => {
    const token = fakeAccessToken({ iat: 0, exp: 900 })
    expect(expiresWithin(token, 60_000, 839_000)).toBe(false)
    expect(expiresWithin(token, 60_000, 840_000)).toBe(true)
    expect(expiresWithin('garbage', 60_000, 0)).toBe(true)
  })
})

describe('stored tokens', () => {
  it('accepts only the shape the client writes', () => {
    expect(parseStoredTokens('{"accessToken":"a","refreshToken":"r"}')).toEqual({ accessToken: 'a', refreshToken: 'r' })
    for (const bad of [null, '', 'not json', '[]', '{"accessToken":"a"}', '{"accessToken":1,"refreshToken":"r"}']) {
      expect(parseStoredTokens(bad)).toBeNull()
    }
  })
})
