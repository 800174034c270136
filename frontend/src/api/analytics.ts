// The administrators' dashboard: totals, runs by language, answers by mode, active rooms, the
// event log and the services' health, each refreshed every few seconds while shown.

import { useQuery } from '@tanstack/react-query'
import { api } from '../state/session'

export interface Overview {
  users: number
  sessions: number
  rooms: number
  executions: number
  ai_calls: number
  collaboration_ops: number
  executions_last_day: number
  ai_calls_last_day: number
  collaboration_ops_last_day: number
  online_users: number
}

export interface Bucket {
  /** null for the last bucket: everything longer. */
  upper_ms: number | null
  count: number
}

export interface ExecutionStats {
  languages: { language: string; count: number; average_wall_time_ms: number; success_rate: number }[]
  wall_time_histogram: Bucket[]
}

export interface AiStats {
  modes: { mode: string; count: number; average_latency_ms: number; success_rate: number; average_time_to_first_token_ms: number }[]
  latency_histogram: Bucket[]
}

export interface ActiveRoom {
  room_id: string
  name: string
  member_count: number
  online_count: number
  events_last_day: number
}

export interface PlatformEvent {
  id: string
  topic: string
  type: string
  user_id: string
  room_id: string
  metadata: Record<string, unknown>
  created_at: string
  created_at_ms: number
}

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
