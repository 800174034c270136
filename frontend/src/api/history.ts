// File history: versions (saved, checkpointed, restored), their content and diffs, restore,
// and a room's event log.

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { api } from '../state/session'
import type { Schemas } from './types'

export type VersionKind = Version['kind']
export type Author = Schemas['AuthorBody']
export type Version = Schemas['VersionBody']
export type RoomEvent = Schemas['RoomEventBody']

export const historyKeys = {
  versions: (fileId: string) => ['history', 'file', fileId] as const,
  version: (versionId: string) => ['history', 'version', versionId] as const,
  roomEvents: (roomId: string) => ['history', 'room', roomId] as const,
}

const encode = encodeURIComponent

/** How often an open history panel looks for versions made elsewhere (checkpoints, others' saves). */
const VERSIONS_REFRESH_MS = 10_000

export function useVersions(fileId: string | null) {
  return useQuery({
    queryKey: historyKeys.versions(fileId ?? ''),
    enabled: fileId !== null,
    refetchInterval: VERSIONS_REFRESH_MS,
    queryFn: ({ signal }) =>
      api.get<{ versions: Version[] }>(`/api/history/file/${encode(fileId ?? '')}?limit=200`, signal).then((body) => body.versions),
  })
}

export function useVersionContent(versionId: string | null) {
  return useQuery({
    queryKey: historyKeys.version(versionId ?? ''),
    enabled: versionId !== null,
    // A version never changes.
    staleTime: Infinity,
    queryFn: ({ signal }) => api.get<Version>(`/api/history/version/${encode(versionId ?? '')}`, signal),
  })
}

export function useRoomEvents(roomId: string) {
  return useQuery({
    queryKey: historyKeys.roomEvents(roomId),
    refetchInterval: VERSIONS_REFRESH_MS,
    queryFn: ({ signal }) =>
      api.get<{ events: RoomEvent[] }>(`/api/history/room/${encode(roomId)}/events?limit=100`, signal).then((body) => body.events),
  })
}

/** Saves the file's current content as a version. */
export function saveVersion(fileId: string, message = ''): Promise<Version> {
  return api.post<Version>(`/api/history/file/${encode(fileId)}`, message.trim() === '' ? {} : { message: message.trim() })
}

export function useSaveVersion(fileId: string) {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: (message: string) => saveVersion(fileId, message),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: historyKeys.versions(fileId) }),
  })
}

/**
 * Makes `version`'s content current again, as an edit every collaborator sees; refused (409,
 * `stale_head`) when a version newer than `expectedHead` was made meanwhile.
 */
export function useRestoreVersion(fileId: string) {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: ({ versionId, expectedHead }: { versionId: string; expectedHead: number }) =>
      api.post<Version>(`/api/history/restore/${encode(versionId)}`, { expected_head: expectedHead }),
    onSettled: () => queryClient.invalidateQueries({ queryKey: historyKeys.versions(fileId) }),
  })
}

/** Who made a version, as a short phrase: "ada", "ada and bob", "ada and 2 others". */
export function authorsLabel(version: Pick<Version, 'authors' | 'author_username'>): string {
  const names = version.authors.map((author) => author.username || 'someone')
  if (names.length === 0) return version.author_username || 'someone'
  if (names.length === 1) return names[0]
  if (names.length === 2) return `${names[0]} and ${names[1]}`
  return `${names[0]} and ${names.length - 1} others`
}
