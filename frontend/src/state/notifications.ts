// The signed-in user's notifications as the bell shows them: the unread count and the latest few,
// kept current by the live stream. One stream per tab, opened on sign-in and reopened (after a
// fresh listing) whenever it ends, with a growing pause while the server cannot be reached.

import { create } from 'zustand'
import { listNotifications, markAllRead, markRead, type AppNotification, type StreamHandlers } from '../api/notifications'

/** How many the bell shows. */
export const BELL_SIZE = 8

export interface NotificationsState {
  unreadCount: number
  latest: AppNotification[]
  /** The stream is open and listening. */
  live: boolean
  /** Counts every notification that arrived live, so pages showing listings know to refetch. */
  arrivals: number
}

export const useNotifications = create<NotificationsState>(() => ({ unreadCount: 0, latest: [], live: false, arrivals: 0 }))

/** A notification pushed live: first in the list (once), one more unread. */
export function received(state: NotificationsState, notification: AppNotification): Partial<NotificationsState> {
  if (state.latest.some((known) => known.id === notification.id)) return {}
  return {
    latest: [notification, ...state.latest].slice(0, BELL_SIZE),
    unreadCount: state.unreadCount + (notification.read ? 0 : 1),
    arrivals: state.arrivals + 1,
  }
}

/** Some notifications were marked read (here or in another tab's listing). */
export function markedRead(state: NotificationsState, ids: string[] | 'all', unreadCount: number): Partial<NotificationsState> {
  return {
    unreadCount,
    latest: state.latest.map((notification) =>
      ids === 'all' || ids.includes(notification.id) ? { ...notification, read: true } : notification,
    ),
  }
}

export async function refreshNotifications(signal?: AbortSignal): Promise<void> {
  const arrivalsBefore = useNotifications.getState().arrivals
  const list = await listNotifications({ limit: BELL_SIZE }, signal)
  useNotifications.setState((state) => listed(state, list.notifications, list.unread_count, arrivalsBefore))
}

/**
 * A fresh listing, merged with what arrived live while it was being fetched (the first
 * `state.arrivals - arrivalsBefore` of the bell's list), which the listing may predate.
 */
export function listed(
  state: NotificationsState,
  notifications: AppNotification[],
  unreadCount: number,
  arrivalsBefore: number,
): Partial<NotificationsState> {
  const inListing = new Set(notifications.map((notification) => notification.id))
  const meanwhile = state.latest
    .slice(0, Math.max(0, state.arrivals - arrivalsBefore))
    .filter((notification) => !inListing.has(notification.id))
  return {
    latest: [...meanwhile, ...notifications].slice(0, BELL_SIZE),
    unreadCount: unreadCount + meanwhile.filter((notification) => !notification.read).length,
  }
}

export async function markNotificationsRead(ids: string[]): Promise<void> {
  if (ids.length === 0) return
  const answer = await markRead(ids)
  useNotifications.setState((state) => markedRead(state, ids, answer.unread_count))
}

export async function markEveryNotificationRead(): Promise<void> {
  const answer = await markAllRead()
  useNotifications.setState((state) => markedRead(state, 'all', answer.unread_count))
}

export type StreamFollower = (handlers: StreamHandlers, signal: AbortSignal) => Promise<void>

export interface FollowOptions {
  follow: StreamFollower
  refresh: (signal: AbortSignal) => Promise<void>
  /** Waits before reopening, given the attempt number; resolves early when aborted. */
  pause?: (attempt: number, signal: AbortSignal) => Promise<void>
}

const pauseFor = (attempt: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const delay = Math.min(1_000 * 2 ** Math.min(attempt, 5), 30_000) * (0.75 + Math.random() / 2)
    const timer = setTimeout(resolve, delay)
    signal.addEventListener('abort', () => {
      clearTimeout(timer)
      resolve()
    })
  })

/**
 * Keeps the stream open until `stop` is called: on each (re)opening, lists what may have been
 * missed once the stream listens. Returns `stop`.
 */
export function followLive(options: FollowOptions): () => void {
  const controller = new AbortController()
  const pause = options.pause ?? pauseFor
  void (async () => {
    let failures = 0
    while (!controller.signal.aborted) {
      try {
        await options.follow(
          {
            onReady: () => {
              failures = 0
              useNotifications.setState({ live: true })
              void options.refresh(controller.signal).catch(() => undefined)
            },
            onNotification: (notification) => useNotifications.setState((state) => received(state, notification)),
          },
          controller.signal,
        )
      } catch {
        failures += 1
      }
      useNotifications.setState({ live: false })
      if (controller.signal.aborted) return
      await pause(failures, controller.signal)
    }
  })()
  return () => {
    controller.abort()
    useNotifications.setState({ unreadCount: 0, latest: [], live: false })
  }
}
