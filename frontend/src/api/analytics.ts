// The administrators' dashboard: totals, runs by language, answers by mode, active rooms, the
// event log and the services' health, each refreshed every few seconds while shown.

import { useQuery } from '@tanstack/react-query'
import { api } from '../state/session'
import type { Schemas } from './types'

export type Overview = Schemas['OverviewBody']
/** `upper_ms` is null for the last bucket: everything longer. */
export type Bucket = Schemas['BucketBody']
export type ExecutionStats = Schemas['ExecutionStatsBody']
export type AiStats = Schemas['AiStatsBody']
export type ActiveRoom = Schemas['ActiveRoomBody']
export type PlatformEvent = Schemas['PlatformEventBody']

export interface ServiceHealth {
  service: string
  status: 'SERVING' | 'NOT_SERVING' | 'UNREACHABLE' | string
  latency_ms: number
}

/** How often the shown tab asks again. */
export const DASHBOARD_REFRESH_MS = 5_000

function useDashboardQuery<T>(name: string, path: string, refreshMs = DASHBOARD_REFRESH_MS) {
  return useQuery({
    queryKey: ['analytics', name, path],
    refetchInterval: refreshMs,
    staleTime: 0,
    queryFn: ({ signal }) => api.get<T>(path, signal),
  })
}

export const useOverview = () => useDashboardQuery<Overview>('overview', '/api/analytics/overview')
export const useExecutionStats = () => useDashboardQuery<ExecutionStats>('executions', '/api/analytics/executions')
export const useAiStats = () => useDashboardQuery<AiStats>('ai', '/api/analytics/ai')
export const useActiveRooms = () => useDashboardQuery<{ rooms: ActiveRoom[] }>('rooms', '/api/analytics/active-rooms?limit=20')
export const useServiceHealth = () => useDashboardQuery<{ services: ServiceHealth[] }>('health', '/api/analytics/health')
export const usePlatformEvents = (topic: string) =>
  useDashboardQuery<{ events: PlatformEvent[] }>(
    'events',
    topic === '' ? '/api/analytics/events?limit=100' : `/api/analytics/events?limit=100&topic=${encodeURIComponent(topic)}`,
    2_000,
  )

/** A histogram bucket's label: "≤ 250 ms", "≤ 2.5 s", "> 30 s". */
export function bucketLabel(bucket: Bucket, previous: Bucket | undefined): string {
  const time = (ms: number) => (ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`)
  if (bucket.upper_ms === null) return previous?.upper_ms ? `> ${time(previous.upper_ms)}` : 'all'
  return `≤ ${time(bucket.upper_ms)}`
}
