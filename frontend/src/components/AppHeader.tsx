import type { ReactNode } from 'react'
import { Link, useNavigate } from 'react-router'
import { signOut, useSession } from '../state/session'
import { useUi } from '../state/ui'
import { Avatar, IconButton } from './ui'
import { Logo } from './Logo'
import { colourForUser } from '../collab/protocol'
import { anyUnsavedEdits, endAllSessions } from '../collab/sessionPool'
import { ChartIcon, MoonIcon, SunIcon } from './icons'
import { NotificationBell } from './NotificationBell'

export function ThemeToggle() {
  const theme = useUi((state) => state.theme)
  const toggleTheme = useUi((state) => state.toggleTheme)
  return (
    <IconButton label={theme === 'dark' ? 'Switch to the light theme' : 'Switch to the dark theme'} onClick={toggleTheme}>
      {theme === 'dark' ? <SunIcon /> : <MoonIcon />}
    </IconButton>
  )
}

export function UserMenu() {
  const user = useSession((state) => state.user)
  const navigate = useNavigate()
  if (!user) return null
  return (
    <div className="flex items-center gap-2">
      <span className="flex items-center gap-2 text-sm text-muted" title={user.email}>
        <Avatar name={user.username} colour={colourForUser(user.id)} size={22} />
        <span className="hidden sm:inline" data-testid="current-user">
          {user.username}
        </span>
      </span>
      <button
        type="button"
        onClick={() => {
          if (anyUnsavedEdits() && !window.confirm('Some edits have not reached the server yet and would be lost. Sign out anyway?')) return
          endAllSessions()
          void signOut().then(() => navigate('/login'))
        }}
        className="rounded-md px-2 py-1 text-xs text-muted hover:bg-hover hover:text-fg"
      >
        Sign out
      </button>
    </div>
  )
}

function SignedInOnly({ children }: { children: ReactNode }) {
  const signedIn = useSession((state) => state.user !== null)
  return signedIn ? <>{children}</> : null
}

/** Administrators reach the dashboard from every page. */
function AdminLink() {
  const isAdmin = useSession((state) => state.user?.is_admin ?? false)
  if (!isAdmin) return null
  return (
    <Link
      to="/admin"
      aria-label="Dashboard"
      title="Dashboard"
      className="inline-flex h-7 w-7 items-center justify-center rounded-md text-muted transition hover:bg-hover hover:text-fg"
    >
      <ChartIcon />
    </Link>
  )
}

/** The page's name in the header, after the logo: "CodeSync / name". */
export function PageTitle({ children, testId }: { children: ReactNode; testId?: string }) {
  return (
    <>
      <span className="text-faint" aria-hidden="true">
        /
      </span>
      <h1 className="truncate text-sm font-medium" data-testid={testId}>
        {children}
      </h1>
    </>
  )
}

export function AppHeader({ children }: { children?: ReactNode }) {
  return (
    <header className="flex h-12 shrink-0 items-center gap-3 border-b border-line bg-panel px-3">
      <Link
        to="/"
        className="flex items-center gap-2 rounded-md px-1 text-sm font-semibold tracking-tight"
        aria-label="CodeSync, your rooms"
      >
        <Logo size={22} />
        <span className="hidden sm:inline">CodeSync</span>
      </Link>
      <div className="flex min-w-0 flex-1 items-center gap-3">{children}</div>
      <AdminLink />
      <SignedInOnly>
        <NotificationBell />
      </SignedInOnly>
      <ThemeToggle />
      <UserMenu />
    </header>
  )
}
