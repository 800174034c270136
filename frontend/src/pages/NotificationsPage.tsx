// Every notification of the signed-in user, filtered by type and date, grouped by day (Today,
// Yesterday, then dates); marked read one by one or all at once. New ones arrive live.

import { useEffect, useRef, useState } from 'react'
import { Link } from 'react-router'
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query'
import { describeError } from '../api/client'
import { groupByDay, listNotifications, type AppNotification, type NotificationFilter, type NotificationType } from '../api/notifications'
import { AppHeader, PageTitle } from '../components/AppHeader'
import { notificationTarget } from '../components/NotificationBell'
import { Button, EmptyState, ErrorState, Spinner } from '../components/ui'
import { clockTime } from '../format'
import { markEveryNotificationRead, markNotificationsRead, useNotifications } from '../state/notifications'

const types: { value: NotificationType | ''; label: string }[] = [
  { value: '', label: 'All types' },
  { value: 'execution', label: 'Runs' },
  { value: 'invite', label: 'Invites' },
  { value: 'room', label: 'Rooms' },
  { value: 'system', label: 'System' },
]

const typeWords: Record<NotificationType, string> = { execution: 'Run', invite: 'Invite', room: 'Room', system: 'System' }

/** A date input's day as the start of that day in the browser's time zone, for the API. */
function startOfLocalDay(date: string): string | undefined {
  if (date === '') return undefined
  const [year, month, day] = date.split('-').map(Number)
  return new Date(year, month - 1, day).toISOString()
}

function startOfNextLocalDay(date: string): string | undefined {
  if (date === '') return undefined
  const [year, month, day] = date.split('-').map(Number)
  return new Date(year, month - 1, day + 1).toISOString()
}

export function NotificationsPage() {
  const [type, setType] = useState<NotificationType | ''>('')
  const [from, setFrom] = useState('')
  const [to, setTo] = useState('')
  const [unreadOnly, setUnreadOnly] = useState(false)
  const filter: NotificationFilter = { type, since: startOfLocalDay(from), until: startOfNextLocalDay(to), unreadOnly, limit: 200 }
  const queryClient = useQueryClient()
  const list = useQuery({
    queryKey: ['notifications', filter],
    queryFn: ({ signal }) => listNotifications(filter, signal),
    placeholderData: keepPreviousData,
  })
  // New ones arrive live (and the bell's marks change the listing): list again.
  const arrivals = useNotifications((state) => state.arrivals)
  const unread = useNotifications((state) => state.unreadCount)
  const seen = useRef({ arrivals, unread })
  useEffect(() => {
    // Not on the first render: the listing was just fetched.
    if (seen.current.arrivals === arrivals && seen.current.unread === unread) return
    seen.current = { arrivals, unread }
    void queryClient.invalidateQueries({ queryKey: ['notifications'] })
  }, [arrivals, unread, queryClient])

  const groups = groupByDay(list.data?.notifications ?? [])
  const [problem, setProblem] = useState<string | null>(null)
  const markOne = (notification: AppNotification) =>
    void markNotificationsRead([notification.id]).catch((error: unknown) => setProblem(describeError(error)))

  return (
    <div className="flex h-full flex-col">
      <AppHeader>
        <PageTitle>Notifications</PageTitle>
      </AppHeader>
      <main className="mx-auto flex w-full max-w-3xl min-h-0 flex-1 flex-col gap-4 overflow-y-auto p-6">
        <form className="flex flex-wrap items-end gap-3" aria-label="Filters" onSubmit={(event) => event.preventDefault()}>
          <label className="flex flex-col gap-1 text-xs text-muted">
            Type
            <select
              value={type}
              onChange={(event) => setType(event.target.value as NotificationType | '')}
              className="rounded-md border border-line bg-canvas px-2 py-1.5 text-sm text-fg"
              data-testid="type-filter"
            >
              {types.map((option) => (
                <option key={option.value} value={option.value}>
                  {option.label}
                </option>
              ))}
            </select>
          </label>
          <label className="flex flex-col gap-1 text-xs text-muted">
            From
            <input
              type="date"
              value={from}
              onChange={(event) => setFrom(event.target.value)}
              className="rounded-md border border-line bg-canvas px-2 py-1 text-sm text-fg"
            />
          </label>
          <label className="flex flex-col gap-1 text-xs text-muted">
            To
            <input
              type="date"
              value={to}
              onChange={(event) => setTo(event.target.value)}
              className="rounded-md border border-line bg-canvas px-2 py-1 text-sm text-fg"
            />
          </label>
          <label className="flex items-center gap-2 pb-1.5 text-sm text-fg">
            <input type="checkbox" checked={unreadOnly} onChange={(event) => setUnreadOnly(event.target.checked)} />
            Unread only
          </label>
          <Button
            className="ml-auto"
            disabled={unread === 0}
            onClick={() => void markEveryNotificationRead().catch((error: unknown) => setProblem(describeError(error)))}
          >
            Mark all read
          </Button>
        </form>
        {problem && <p className="text-sm text-danger">{problem}</p>}
        {list.isPending && <Spinner label="Loading notifications…" />}
        {list.isError && list.data === undefined && <ErrorState message={describeError(list.error)} onRetry={() => void list.refetch()} />}
        {list.data && groups.length === 0 && (
          <EmptyState title="No notifications">
            {type || from || to || unreadOnly ? 'Nothing matches these filters.' : 'Finished runs, invites and room news show up here.'}
          </EmptyState>
        )}
        {groups.map((group) => (
          <section key={group.day} aria-label={group.day} data-testid="notification-day">
            <h2 className="mb-2 text-xs font-semibold tracking-wide text-muted uppercase">{group.day}</h2>
            <ul className="divide-y divide-line rounded-lg border border-line bg-panel">
              {group.notifications.map((notification) => {
                const target = notificationTarget(notification)
                return (
                  <li key={notification.id} className="flex items-start gap-3 px-4 py-3">
                    <span
                      aria-hidden="true"
                      className={`mt-1.5 h-2 w-2 shrink-0 rounded-full ${notification.read ? 'bg-transparent' : 'bg-accent'}`}
                    />
                    <div className="flex min-w-0 flex-1 flex-col gap-0.5">
                      <span className="flex items-center gap-2">
                        <span className="rounded bg-raised px-1.5 text-[11px] text-muted">{typeWords[notification.type]}</span>
                        <span className={`truncate text-sm ${notification.read ? 'text-muted' : 'font-medium text-fg'}`}>
                          {notification.title}
                        </span>
                      </span>
                      {notification.message && <span className="text-sm text-muted">{notification.message}</span>}
                      <span className="flex gap-3 text-xs">
                        <time className="text-faint" dateTime={notification.created_at}>
                          {clockTime(notification.created_at)}
                        </time>
                        {target && (
                          <Link
                            to={target}
                            className="text-accent hover:underline"
                            onClick={() => !notification.read && markOne(notification)}
                          >
                            Open
                          </Link>
                        )}
                      </span>
                    </div>
                    {!notification.read && (
                      <button type="button" className="text-xs text-accent hover:underline" onClick={() => markOne(notification)}>
                        Mark read
                      </button>
                    )}
                  </li>
                )
              })}
            </ul>
          </section>
        ))}
      </main>
    </div>
  )
}
