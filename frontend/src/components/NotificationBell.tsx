// The bell in the header: how many notifications are unread, and a menu of the latest few that
// updates live; choosing one marks it read and opens what it is about.

import { useEffect, useRef, useState } from 'react'
import { Link, useNavigate } from 'react-router'
import { describeError } from '../api/client'
import type { AppNotification } from '../api/notifications'
import { relativeTime } from '../format'
import { markEveryNotificationRead, markNotificationsRead, useNotifications } from '../state/notifications'
import { BellIcon } from './icons'

/** Where a notification leads: its room, if it names one. */
export function notificationTarget(notification: AppNotification): string | null {
  const roomId = notification.metadata.room_id
  if (typeof roomId !== 'string' || roomId === '') return null
  if (notification.type === 'room' && notification.metadata.role === null) return null
  const fileId = notification.metadata.file_id
  return typeof fileId === 'string' && fileId !== '' ? `/rooms/${roomId}?file=${fileId}` : `/rooms/${roomId}`
}

export function NotificationBell() {
  const unreadCount = useNotifications((state) => state.unreadCount)
  const latest = useNotifications((state) => state.latest)
  const [open, setOpen] = useState(false)
  const [problem, setProblem] = useState<string | null>(null)
  const containerRef = useRef<HTMLDivElement>(null)
  const navigate = useNavigate()

  // The menu closes on Escape and on a click anywhere else.
  useEffect(() => {
    if (!open) return
    const onPointer = (event: PointerEvent) => {
      if (!containerRef.current?.contains(event.target as Node)) setOpen(false)
    }
    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Escape') setOpen(false)
    }
    document.addEventListener('pointerdown', onPointer)
    document.addEventListener('keydown', onKey)
    return () => {
      document.removeEventListener('pointerdown', onPointer)
      document.removeEventListener('keydown', onKey)
    }
  }, [open])

  const choose = (notification: AppNotification) => {
    setOpen(false)
    if (!notification.read) void markNotificationsRead([notification.id]).catch((error: unknown) => setProblem(describeError(error)))
    const target = notificationTarget(notification)
    if (target) navigate(target)
  }

  const label = unreadCount > 0 ? `Notifications, ${unreadCount} unread` : 'Notifications'
  return (
    <div ref={containerRef} className="relative">
      <button
        type="button"
        aria-label={label}
        title={label}
        aria-expanded={open}
        aria-haspopup="true"
        onClick={() => setOpen(!open)}
        data-testid="notification-bell"
        className="relative inline-flex h-7 w-7 items-center justify-center rounded-md text-muted transition hover:bg-hover hover:text-fg"
      >
        <BellIcon />
        {unreadCount > 0 && (
          <span
            data-testid="unread-badge"
            className="absolute -top-0.5 -right-0.5 min-w-4 rounded-full bg-danger px-1 text-center text-[10px] leading-4 font-semibold text-white"
          >
            {unreadCount > 99 ? '99+' : unreadCount}
          </span>
        )}
      </button>
      {open && (
        <div
          role="region"
          aria-label="Latest notifications"
          className="absolute top-9 right-0 z-50 flex w-80 flex-col rounded-lg border border-line bg-raised shadow-2xl"
        >
          <div className="flex items-center justify-between border-b border-line px-3 py-2">
            <span className="text-sm font-semibold">Notifications</span>
            <button
              type="button"
              className="text-xs text-accent hover:underline disabled:text-faint disabled:no-underline"
              disabled={unreadCount === 0}
              onClick={() => void markEveryNotificationRead().catch((error: unknown) => setProblem(describeError(error)))}
            >
              Mark all read
            </button>
          </div>
          {problem && <p className="px-3 py-1 text-xs text-danger">{problem}</p>}
          {latest.length === 0 ? (
            <p className="px-3 py-6 text-center text-sm text-muted">Nothing yet. Finished runs and room news show up here.</p>
          ) : (
            <ul className="max-h-96 overflow-y-auto py-1" data-testid="notification-menu">
              {latest.map((notification) => (
                <li key={notification.id}>
                  <button
                    type="button"
                    onClick={() => choose(notification)}
                    className="flex w-full gap-2 px-3 py-2 text-left hover:bg-hover"
                  >
                    <span
                      aria-hidden="true"
                      className={`mt-1.5 h-2 w-2 shrink-0 rounded-full ${notification.read ? 'bg-transparent' : 'bg-accent'}`}
                    />
                    <span className="flex min-w-0 flex-col gap-0.5">
                      <span className={`truncate text-sm ${notification.read ? 'text-muted' : 'font-medium text-fg'}`}>
                        {notification.title}
                        {!notification.read && <span className="sr-only"> (unread)</span>}
                      </span>
                      {notification.message && <span className="truncate text-xs text-muted">{notification.message}</span>}
                      <time className="text-[11px] text-faint" dateTime={notification.created_at}>
                        {relativeTime(notification.created_at)}
                      </time>
                    </span>
                  </button>
                </li>
              ))}
            </ul>
          )}
          <Link
            to="/notifications"
            onClick={() => setOpen(false)}
            className="border-t border-line px-3 py-2 text-center text-xs text-accent hover:underline"
          >
            See all notifications
          </Link>
        </div>
      )}
    </div>
  )
}
