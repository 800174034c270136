import { useEffect, useRef } from 'react'
import { Link, useNavigate, useParams } from 'react-router'
import { describeError } from '../api/client'
import { useJoinRoom } from '../api/queries'
import { AppHeader } from '../components/AppHeader'
import { ErrorState, Spinner } from '../components/ui'

/** `/join/CODE`: the invite link. Joins at once, then opens the room. */
export function JoinPage() {
  const { inviteCode = '' } = useParams()
  const join = useJoinRoom()
  const navigate = useNavigate()
  const started = useRef(false)

  useEffect(() => {
    // Once, even under StrictMode's double effects: joining twice is harmless but noisy.
    if (started.current) return
    started.current = true
    join.mutate(inviteCode, { onSuccess: (room) => navigate(`/rooms/${room.id}`, { replace: true }) })
  }, [inviteCode, join, navigate])

  return (
    <div className="flex h-full flex-col">
      <AppHeader />
      <main className="flex flex-1 flex-col items-center justify-center gap-4">
        {join.isError ? (
          <>
            <ErrorState message={describeError(join.error)} />
            <Link to="/" className="text-sm text-accent hover:underline">
              Back to your rooms
            </Link>
          </>
        ) : (
          <Spinner label="Joining the room…" />
        )}
      </main>
    </div>
  )
}
