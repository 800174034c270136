import { useState, type FormEvent } from 'react'
import { Link, Navigate, useNavigate, useSearchParams } from 'react-router'
import { ApiError, describeError } from '../api/client'
import { register, signIn, useSession } from '../state/session'
import { Alert, Button, TextField } from '../components/ui'
import { Logo } from '../components/Logo'
import { safeNextPath } from '../links'

const endedMessages = {
  session_expired: 'Your session expired. Sign in again to continue.',
  refresh_token_reused: 'Your session was ended because its sign-in was used from two places. Sign in again.',
  signed_out: null,
} as const

export function AuthPage({ mode }: { mode: 'login' | 'register' }) {
  const [searchParams] = useSearchParams()
  const next = safeNextPath(searchParams.get('next'))
  const status = useSession((state) => state.status)
  const endedReason = useSession((state) => state.endedReason)
  const navigate = useNavigate()
  const [username, setUsername] = useState('')
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<ApiError | Error | null>(null)

  if (status === 'signed_in') return <Navigate to={next} replace />

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      if (mode === 'register') await register(username.trim(), email.trim(), password)
      else await signIn(email.trim(), password)
      navigate(next, { replace: true })
    } catch (caught) {
      setError(caught instanceof Error ? caught : new Error('sign-in failed'))
    } finally {
      setBusy(false)
    }
  }

  const fieldError = (field: string): string | null => {
    if (!(error instanceof ApiError)) return null
    const byField: Record<string, string[]> = {
      username: ['invalid_username', 'username_taken'],
      email: ['invalid_email', 'email_taken'],
      password: ['weak_password', 'invalid_password'],
    }
    return byField[field]?.includes(error.code) ? describeError(error) : null
  }
  const generalError = error && !['username', 'email', 'password'].some((field) => fieldError(field) !== null) ? describeError(error) : null
  const ended = endedReason ? endedMessages[endedReason] : null
  const otherMode = mode === 'login' ? '/register' : '/login'
  const otherHref = next === '/' ? otherMode : `${otherMode}?next=${encodeURIComponent(next)}`

  return (
    <main className="flex min-h-full items-center justify-center px-4 py-10">
      <div className="w-full max-w-sm">
        <div className="mb-8 flex flex-col items-center gap-3 text-center">
          <Logo size={40} />
          <h1 className="text-xl font-semibold tracking-tight">{mode === 'login' ? 'Sign in to CodeSync' : 'Create your account'}</h1>
          <p className="text-sm text-muted">Edit code together, in real time.</p>
        </div>
        <form onSubmit={submit} className="flex flex-col gap-4 rounded-xl border border-line bg-panel p-6 shadow-sm" noValidate>
          {ended && mode === 'login' && <Alert tone="info">{ended}</Alert>}
          {mode === 'register' && (
            <TextField
              id="username"
              label="Username"
              autoComplete="username"
              required
              minLength={3}
              maxLength={32}
              value={username}
              onChange={(event) => setUsername(event.target.value)}
              hint="3–32 letters, digits, dots, dashes or underscores."
              error={fieldError('username')}
            />
          )}
          <TextField
            id="email"
            label="Email"
            type="email"
            autoComplete="email"
            required
            value={email}
            onChange={(event) => setEmail(event.target.value)}
            error={fieldError('email')}
          />
          <TextField
            id="password"
            label="Password"
            type="password"
            autoComplete={mode === 'login' ? 'current-password' : 'new-password'}
            required
            minLength={8}
            value={password}
            onChange={(event) => setPassword(event.target.value)}
            hint={mode === 'register' ? 'At least 8 characters.' : undefined}
            error={fieldError('password')}
          />
          {generalError && <Alert>{generalError}</Alert>}
          <Button type="submit" variant="primary" busy={busy} className="w-full py-2">
            {mode === 'login' ? 'Sign in' : 'Create account'}
          </Button>
        </form>
        <p className="mt-6 text-center text-sm text-muted">
          {mode === 'login' ? 'New to CodeSync? ' : 'Already have an account? '}
          <Link to={otherHref} className="font-medium text-accent hover:underline">
            {mode === 'login' ? 'Create an account' : 'Sign in'}
          </Link>
        </p>
      </div>
    </main>
  )
}
