// Unsigned JWT-shaped tokens for tests: the client reads `iat` and `exp`, never the signature.

export function fakeAccessToken(claims: { iat?: number; exp: number; sub?: string }): string {
  const encode = (value: object) => btoa(JSON.stringify(value)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')
  return `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ sub: 'user', ...claims })}.signature`
}
