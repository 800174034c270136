// The administrators' dashboard, in five tabs: Overview (totals and the services' health),
// Executions (runs by language, wall times), AI (answers by mode, latencies), Events (the live
// event log) and Rooms (the busiest rooms). Each tab refreshes itself while it is shown.

import { useState, type ReactNode } from 'react'
import { useQuery } from '@tanstack/react-query'
import { ApiError, describeError } from '../api/client'
import { api } from '../state/session'
import {
  bucketLabel,
  useActiveRooms,
  useAiStats,
  useExecutionStats,
  useOverview,
  usePlatformEvents,
  useServiceHealth,
  type Bucket,
} from '../api/analytics'
import { AppHeader, PageTitle } from '../components/AppHeader'
import { BarChart } from '../components/BarChart'
import { EmptyState, ErrorState, Spinner } from '../components/ui'
import { clockTime } from '../format'

const tabs = ['Overview', 'Executions', 'AI', 'Events', 'Rooms'] as const
type Tab = (typeof tabs)[number]

const numberFormat = new Intl.NumberFormat()
const percent = (rate: number) => `${Math.round(rate * 100)}%`
const milliseconds = (value: number) => `${numberFormat.format(Math.round(value))} ms`

export function AdminPage() {
  const [tab, setTab] = useState<Tab>('Overview')
  // Asked once: whether this user may see the dashboard at all (each tab polls its own figures).
  const access = useQuery({
    queryKey: ['analytics', 'access'],
    queryFn: ({ signal }) => api.get<unknown>('/api/analytics/overview', signal),
    retry: false,
    staleTime: 60_000,
  })
  const forbidden = access.error instanceof ApiError && access.error.status === 403
  return (
    <div className="flex h-full flex-col">
      <AppHeader>
        <PageTitle>Dashboard</PageTitle>
      </AppHeader>
      {forbidden ? (
        <div className="flex flex-1 items-center justify-center">
          <EmptyState title="Only administrators see the dashboard">
            The first account of an installation is its administrator; others are made with `codesync admin grant USER`.
          </EmptyState>
        </div>
      ) : (
        <main className="flex min-h-0 flex-1 flex-col">
          <div role="tablist" aria-label="Dashboard" className="flex shrink-0 gap-1 border-b border-line px-4 pt-3">
            {tabs.map((name) => (
              <button
                key={name}
                type="button"
                role="tab"
                id={`dashboard-tab-${name}`}
                aria-selected={tab === name}
                aria-controls="dashboard-panel"
                onClick={() => setTab(name)}
                className={`rounded-t-md px-4 py-2 text-sm ${tab === name ? 'bg-canvas font-medium text-fg shadow-[inset_0_-2px_0_var(--cs-accent)]' : 'text-muted hover:text-fg'}`}
              >
                {name}
              </button>
            ))}
          </div>
          <div id="dashboard-panel" role="tabpanel" aria-labelledby={`dashboard-tab-${tab}`} className="min-h-0 flex-1 overflow-y-auto p-6">
            {tab === 'Overview' && <OverviewTab />}
            {tab === 'Executions' && <ExecutionsTab />}
            {tab === 'AI' && <AiTab />}
            {tab === 'Events' && <EventsTab />}
            {tab === 'Rooms' && <RoomsTab />}
          </div>
        </main>
      )}
    </div>
  )
}

function Loading<T>({
  query,
  children,
}: {
  query: { data: T | undefined; isPending: boolean; isError: boolean; error: unknown; refetch: () => unknown }
  children: (data: T) => ReactNode
}) {
  if (query.data !== undefined) return <>{children(query.data)}</>
  if (query.isError) return <ErrorState message={describeError(query.error)} onRetry={() => void query.refetch()} />
  return <Spinner label="Loading…" />
}

function StatCard({ label, value, detail, testId }: { label: string; value: number; detail?: string; testId: string }) {
  return (
    <div className="flex flex-col gap-1 rounded-lg border border-line bg-panel p-4" data-testid={testId}>
      <span className="text-xs text-muted">{label}</span>
      <span className="text-2xl font-semibold text-fg" data-testid={`${testId}-value`}>
        {numberFormat.format(value)}
      </span>
      {detail && <span className="text-xs text-faint">{detail}</span>}
    </div>
  )
}

function Section({ title, children }: { title: string; children: ReactNode }) {
  return (
    <section className="flex flex-col gap-3" aria-label={title}>
      <h2 className="text-sm font-semibold text-fg">{title}</h2>
      {children}
    </section>
  )
}

function OverviewTab() {
  const overview = useOverview()
  const health = useServiceHealth()
  return (
    <div className="flex flex-col gap-8">
      <Loading query={overview}>
        {(figures) => (
          <div className="grid grid-cols-2 gap-3 md:grid-cols-4">
            <StatCard label="Users" value={figures.users} testId="stat-users" />
            <StatCard label="Sessions" value={figures.sessions} detail="sign-ups and sign-ins" testId="stat-sessions" />
            <StatCard label="Rooms" value={figures.rooms} detail={`${figures.online_users} people in rooms now`} testId="stat-rooms" />
            <StatCard
              label="Executions"
              value={figures.executions}
              detail={`${figures.executions_last_day} in the last 24 h`}
              testId="stat-executions"
            />
            <StatCard
              label="AI calls"
              value={figures.ai_calls}
              detail={`${figures.ai_calls_last_day} in the last 24 h`}
              testId="stat-ai-calls"
            />
            <StatCard
              label="Collaborative edits"
              value={figures.collaboration_ops}
              detail={`${figures.collaboration_ops_last_day} in the last 24 h`}
              testId="stat-collaboration"
            />
          </div>
        )}
      </Loading>
      <Section title="Services">
        <Loading query={health}>
          {(report) => (
            <ul className="grid grid-cols-2 gap-2 md:grid-cols-3 lg:grid-cols-5" data-testid="service-health">
              {report.services.map((service) => {
                const serving = service.status === 'SERVING'
                return (
                  <li key={service.service} className="flex items-center gap-2 rounded-md border border-line bg-panel px-3 py-2 text-sm">
                    <span aria-hidden="true" className={`h-2.5 w-2.5 rounded-full ${serving ? 'bg-ok' : 'bg-danger'}`} />
                    <span className="flex-1 capitalize">{service.service}</span>
                    <span className={`text-xs ${serving ? 'text-muted' : 'text-danger'}`}>
                      {serving ? `${service.latency_ms} ms` : service.status.toLowerCase().replace('_', ' ')}
                    </span>
                  </li>
                )
              })}
            </ul>
          )}
        </Loading>
      </Section>
    </div>
  )
}

function Histogram({ buckets, label, testId }: { buckets: Bucket[]; label: string; testId: string }) {
  return (
    <BarChart
      label={label}
      labels={buckets.map((bucket, index) => bucketLabel(bucket, buckets[index - 1]))}
      values={buckets.map((bucket) => bucket.count)}
      testId={testId}
    />
  )
}

function ExecutionsTab() {
  const stats = useExecutionStats()
  return (
    <Loading query={stats}>
      {(figures) =>
        figures.languages.length === 0 ? (
          <EmptyState title="No runs yet" />
        ) : (
          <div className="grid gap-8 lg:grid-cols-2">
            <Section title="Executions by language">
              <BarChart
                label="Runs"
                labels={figures.languages.map((language) => language.language)}
                values={figures.languages.map((language) => language.count)}
                testId="executions-chart"
              />
              <table className="w-full text-left text-sm" data-testid="executions-table">
                <thead className="text-xs text-muted">
                  <tr>
                    <th className="py-1 font-medium">Language</th>
                    <th className="py-1 font-medium">Runs</th>
                    <th className="py-1 font-medium">Average time</th>
                    <th className="py-1 font-medium">Success</th>
                  </tr>
                </thead>
                <tbody>
                  {figures.languages.map((language) => (
                    <tr key={language.language} className="border-t border-line">
                      <td className="py-1.5">{language.language}</td>
                      <td className="py-1.5">{language.count}</td>
                      <td className="py-1.5">{milliseconds(language.average_wall_time_ms)}</td>
                      <td className="py-1.5">{percent(language.success_rate)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </Section>
            <Section title="Wall time of runs">
              <Histogram buckets={figures.wall_time_histogram} label="Runs" testId="wall-time-histogram" />
            </Section>
          </div>
        )
      }
    </Loading>
  )
}

function AiTab() {
  const stats = useAiStats()
  return (
    <Loading query={stats}>
      {(figures) =>
        figures.modes.length === 0 ? (
          <EmptyState title="No assistant answers yet" />
        ) : (
          <div className="grid gap-8 lg:grid-cols-2">
            <Section title="AI calls by mode">
              <BarChart
                label="Calls"
                labels={figures.modes.map((mode) => mode.mode)}
                values={figures.modes.map((mode) => mode.count)}
                testId="ai-chart"
              />
              <table className="w-full text-left text-sm" data-testid="ai-table">
                <thead className="text-xs text-muted">
                  <tr>
                    <th className="py-1 font-medium">Mode</th>
                    <th className="py-1 font-medium">Calls</th>
                    <th className="py-1 font-medium">Average latency</th>
                    <th className="py-1 font-medium">First token</th>
                    <th className="py-1 font-medium">Success</th>
                  </tr>
                </thead>
                <tbody>
                  {figures.modes.map((mode) => (
                    <tr key={mode.mode} className="border-t border-line">
                      <td className="py-1.5">{mode.mode}</td>
                      <td className="py-1.5">{mode.count}</td>
                      <td className="py-1.5">{milliseconds(mode.average_latency_ms)}</td>
                      <td className="py-1.5">{milliseconds(mode.average_time_to_first_token_ms)}</td>
                      <td className="py-1.5">{percent(mode.success_rate)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </Section>
            <Section title="Latency of answers">
              <Histogram buckets={figures.latency_histogram} label="Answers" testId="latency-histogram" />
            </Section>
          </div>
        )
      }
    </Loading>
  )
}

const topics = [
  '',
  'room-events',
  'collaboration-events',
  'execution-events',
  'ai-events',
  'notification-events',
  'analytics-events',
  'dead-letter-events',
]

function EventsTab() {
  const [topic, setTopic] = useState('')
  const events = usePlatformEvents(topic)
  return (
    <Section title="Live event log">
      <label className="flex items-center gap-2 text-xs text-muted">
        Topic
        <select
          value={topic}
          onChange={(event) => setTopic(event.target.value)}
          className="rounded-md border border-line bg-canvas px-2 py-1 text-sm text-fg"
        >
          {topics.map((name) => (
            <option key={name} value={name}>
              {name === '' ? 'every topic' : name}
            </option>
          ))}
        </select>
      </label>
      <Loading query={events}>
        {(listed) =>
          listed.events.length === 0 ? (
            <EmptyState title="No events yet" />
          ) : (
            <ol className="divide-y divide-line rounded-lg border border-line bg-panel font-mono text-xs" data-testid="event-log">
              {listed.events.map((event) => (
                <li key={event.id} className="flex gap-3 px-3 py-1.5">
                  <time className="shrink-0 text-faint" dateTime={event.created_at}>
                    {clockTime(event.created_at)}
                  </time>
                  <span className="w-40 shrink-0 truncate text-muted">{event.topic}</span>
                  <span className="shrink-0 text-fg">{event.type}</span>
                  <span className="truncate text-faint">{summary(event.metadata)}</span>
                </li>
              ))}
            </ol>
          )
        }
      </Loading>
    </Section>
  )
}

/** The few fields of an event's details worth a glance. */
function summary(metadata: Record<string, unknown>): string {
  const keys = ['language', 'status', 'mode', 'room_name', 'filename', 'username', 'by_username', 'updates', 'online', 'consumer', 'error']
  return keys
    .filter((key) => metadata[key] !== undefined && metadata[key] !== null && metadata[key] !== '')
    .map((key) => `${key}=${String(metadata[key])}`)
    .join(' ')
}

function RoomsTab() {
  const rooms = useActiveRooms()
  return (
    <Section title="Most active rooms (last 24 hours)">
      <Loading query={rooms}>
        {(listed) =>
          listed.rooms.length === 0 ? (
            <EmptyState title="No active rooms" />
          ) : (
            <table className="w-full text-left text-sm" data-testid="room-leaderboard">
              <thead className="text-xs text-muted">
                <tr>
                  <th className="py-1 font-medium">#</th>
                  <th className="py-1 font-medium">Room</th>
                  <th className="py-1 font-medium">Online</th>
                  <th className="py-1 font-medium">Members</th>
                  <th className="py-1 font-medium">Events</th>
                </tr>
              </thead>
              <tbody>
                {listed.rooms.map((room, index) => (
                  <tr key={room.room_id} className="border-t border-line">
                    <td className="py-1.5 text-muted">{index + 1}</td>
                    <td className="py-1.5">{room.name || room.room_id}</td>
                    <td className="py-1.5">{room.online_count}</td>
                    <td className="py-1.5">{room.member_count}</td>
                    <td className="py-1.5">{room.events_last_day}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
    </Section>
  )
}
