// Notifications: listed with filters, counted, marked read, and pushed live over a server-sent
// event stream (GET /api/notifications/stream, read with fetch so the token travels in a header).

import { api } from '../state/session'
import type { Schemas } from './types'
import { ApiError } from './client'
import { SseParser } from './executions'

export type NotificationType = AppNotification['type']
export type AppNotification = Schemas['NotificationBody']
export type NotificationList = Schemas['NotificationListBody']

export interface NotificationFilter {
  type?: NotificationType | ''
  /** A date (YYYY-MM-DD, UTC) or RFC 3339 time: created at or after it. */
  since?: string
  /** Likewise: created before it. */
  until?: string
  unreadOnly?: boolean
  limit?: number
}

export function notificationsPath(filter: NotificationFilter): string {
  const query = new URLSearchParams()
  if (filter.type) query.set('type', filter.type)
  if (filter.since) query.set('since', filter.since)
  if (filter.until) query.set('until', filter.until)
  if (filter.unreadOnly) query.set('unread', 'true')
  if (filter.limit) query.set('limit', String(filter.limit))
  const text = query.toString()
  return text === '' ? '/api/notifications' : `/api/notifications?${text}`
}

export function listNotifications(filter: NotificationFilter, signal?: AbortSignal): Promise<NotificationList> {
  return api.get<NotificationList>(notificationsPath(filter), signal)
}

export function markRead(ids: string[]): Promise<{ marked: number; unread_count: number }> {
  return api.post('/api/notifications/read', { ids })
}

export function markAllRead(): Promise<{ marked: number; unread_count: number }> {
  return api.post('/api/notifications/read-all', {})
}

export interface StreamHandlers {
  /** The stream is listening: anything before it is in a listing. */
  onReady: () => void
  onNotification: (notification: AppNotification) => void
}

/**
 * Reads the live stream until it ends (resolves) or fails (rejects); aborting `signal` closes it.
 * A `resync` event (the server dropped some) ends it too: the caller lists again and reopens.
 */
export async function followNotifications(handlers: StreamHandlers, signal: AbortSignal): Promise<void> {
  const response = await api.openStream('/api/notifications/stream', undefined, signal)
  if (response.body === null) throw new ApiError(0, 'no_stream', 'the server sent no notification stream')
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  const parser = new SseParser()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    for (const event of parser.push(value)) {
      if (event.event === 'ready') handlers.onReady()
      else if (event.event === 'notification') handlers.onNotification(JSON.parse(event.data) as AppNotification)
      else if (event.event === 'resync' || event.event === 'error') return
    }
  }
}

/** The day a notification belongs to, for grouping: "Today", "Yesterday", or the date. */
export function dayLabel(createdAtMs: number, now: Date = new Date()): string {
  const day = new Date(createdAtMs)
  const startOf = (date: Date) => new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime()
  const days = Math.round((startOf(now) - startOf(day)) / 86_400_000)
  if (days === 0) return 'Today'
  if (days === 1) return 'Yesterday'
  return day.toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' })
}

/** Notifications in groups by day, newest first, keeping their order. */
export function groupByDay(notifications: AppNotification[], now: Date = new Date()): { day: string; notifications: AppNotification[] }[] {
  const groups: { day: string; notifications: AppNotification[] }[] = []
  for (const notification of notifications) {
    const day = dayLabel(notification.created_at_ms, now)
    const last = groups[groups.length - 1]
    if (last && last.day === day) last.notifications.push(notification)
    else groups.push({ day, notifications: [notification] })
  }
  return groups
}
