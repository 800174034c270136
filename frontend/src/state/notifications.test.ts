import { afterEach, describe, expect, it } from 'vitest'
import type { AppNotification } from '../api/notifications'
import { groupByDay, notificationsPath } from '../api/notifications'
import { BELL_SIZE, followLive, listed, markedRead, received, useNotifications } from './notifications'

const notification = (id: string, createdAtMs = Date.now(), read = false): AppNotification => ({
  id,
  type: 'execution',
  title: `title ${id}`,
  message: '',
  metadata: {},
  read,
  created_at: new Date(createdAtMs).toISOString(),
  created_at_ms: createdAtMs,
})

afterEach(() => useNotifications.setState({ unreadCount: 0, latest: [], live: false, arrivals: 0 }))

describe('the bell', () => {
  it('puts a pushed notification first, once, and counts it unread', () => {
    let state = { unreadCount: 2, latest: [notification('a')], live: true, arrivals: 0 }
    state = { ...state, ...received(state, notification('b')) }
    expect(state.latest.map((n) => n.id)).toEqual(['b', 'a'])
    expect(state.unreadCount).toBe(3)
    expect(received(state, notification('b'))).toEqual({})
    for (let index = 0; index < 20; index += 1) state = { ...state, ...received(state, notification(`n${index}`)) }
    expect(state.latest).toHaveLength(BELL_SIZE)
  })

  it('marks some or all read', () => {
    const state = { unreadCount: 2, latest: [notification('a'), notification('b')], live: true, arrivals: 0 }
    const some = markedRead(state, ['a'], 1)
    expect(some.latest?.map((n) => n.read)).toEqual([true, false])
    expect(markedRead(state, 'all', 0).latest?.every((n) => n.read)).toBe(true)
  })

  it('keeps what arrived live while a listing was fetched', () => {
    const state = { unreadCount: 0, latest: [notification('live'), notification('old')], live: true, arrivals: 5 }
    // One arrived during the request (arrivals went from 4 to 5); the listing predates it.
    const merged = listed(state, [notification('old')], 1, 4)
    expect(merged.latest?.map((n) => n.id)).toEqual(['live', 'old'])
    expect(merged.unreadCount).toBe(2)
    // Had the listing included it, it counts once.
    expect(listed(state, [notification('live'), notification('old')], 2, 4).unreadCount).toBe(2)
  })

  it('lists on every opening and reopens the stream after it ends', async () => {
    let openings = 0
    let refreshes = 0
    const stop = followLive({
      follow: async (handlers) => {
        openings += 1
        handlers.onReady()
        if (openings === 1) handlers.onNotification(notification('live'))
        if (openings === 2) throw new Error('connection reset')
      },
      refresh: async () => {
        refreshes += 1
      },
      // A real pause yields to timers, as the default one does.
      pause: () => new Promise((resolve) => setTimeout(resolve, 0)),
    })
    await new Promise((resolve) => setTimeout(resolve, 20))
    stop()
    expect(openings).toBeGreaterThanOrEqual(3)
    expect(refreshes).toBe(openings)
    expect(useNotifications.getState().latest).toEqual([])
  })
})

describe('the notifications page', () => {
  it('groups by day: today, yesterday, then dates', () => {
    const now = new Date(2026, 11, 1, 15, 0)
    const groups = groupByDay(
      [
        notification('a', new Date(2026, 11, 1, 9, 0).getTime()),
        notification('b', new Date(2026, 11, 1, 0, 1).getTime()),
        notification('c', new Date(2026, 10, 30, 23, 59).getTime()),
        notification('d', new Date(2026, 10, 20, 12, 0).getTime()),
      ],
      now,
    )
    expect(
      groups.map((group) => [
        group.day.startsWith('Today') || group.day.startsWith('Yesterday') ? group.day : 'date',
        group.notifications.length,
      ]),
    ).toEqual([
      ['Today', 2],
      ['Yesterday', 1],
      ['date', 1],
    ])
  })

  it('builds listing addresses from filters', () => {
    expect(notificationsPath({})).toBe('/api/notifications')
    expect(notificationsPath({ type: 'execution', since: '2026-12-01', unreadOnly: true, limit: 8 })).toBe(
      '/api/notifications?type=execution&since=2026-12-01&unread=true&limit=8',
    )
  })
})
