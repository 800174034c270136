// Server state through TanStack Query: one key per resource, and the mutations that change them.

import { QueryClient, useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { ApiError, errorFromResponse } from './client'
import type { FileEntry, Member, Role, Room } from './types'
import { api } from '../state/session'

export function createQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 10_000,
        // A 4xx will not change by asking again; a network error or a 5xx may.
        retry: (failureCount, error) => failureCount < 3 && !(error instanceof ApiError && error.status >= 400 && error.status < 500),
        retryDelay: (attempt) => Math.min(500 * 2 ** attempt, 5_000),
      },
      mutations: { retry: false },
    },
  })
}

export const queryKeys = {
  rooms: ['rooms'] as const,
  room: (roomId: string) => ['rooms', roomId] as const,
  files: (roomId: string) => ['rooms', roomId, 'files'] as const,
  members: (roomId: string) => ['rooms', roomId, 'members'] as const,
}

const path = (template: TemplateStringsArray, ...values: string[]) =>
  template.reduce((built, part, index) => built + part + (index < values.length ? encodeURIComponent(values[index]) : ''), '')

export function useRooms() {
  return useQuery({
    queryKey: queryKeys.rooms,
    queryFn: ({ signal }) => api.get<{ rooms: Room[] }>('/api/rooms', signal).then((body) => body.rooms),
  })
}

export function useRoom(roomId: string) {
  return useQuery({
    queryKey: queryKeys.room(roomId),
    queryFn: ({ signal }) => api.get<Room>(path`/api/rooms/${roomId}`, signal),
  })
}

/** How often an open room's file list is refreshed besides the room socket's `file_changed` (a backstop). */
const FILE_LIST_REFRESH_MS = 30_000

export function useFiles(roomId: string) {
  return useQuery({
    queryKey: queryKeys.files(roomId),
    refetchInterval: FILE_LIST_REFRESH_MS,
    queryFn: ({ signal }) =>
      api
        .get<{ files: FileEntry[] }>(path`/api/rooms/${roomId}/files`, signal)
        .then((body) => [...body.files].sort((a, b) => a.filename.localeCompare(b.filename))),
  })
}

export function useMembers(roomId: string, enabled = true) {
  return useQuery({
    queryKey: queryKeys.members(roomId),
    queryFn: ({ signal }) => api.get<{ members: Member[] }>(path`/api/rooms/${roomId}/members`, signal).then((body) => body.members),
    enabled,
  })
}

export function useCreateRoom() {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: (input: { name: string; description: string; is_public: boolean }) => api.post<Room>('/api/rooms', input),
    onSuccess: (room) => {
      queryClient.setQueryData(queryKeys.room(room.id), room)
      void queryClient.invalidateQueries({ queryKey: queryKeys.rooms, exact: true })
    },
  })
}

export function useJoinRoom() {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: (inviteCode: string) => api.post<Room>('/api/rooms/join', { invite_code: inviteCode }),
    onSuccess: (room) => {
      queryClient.setQueryData(queryKeys.room(room.id), room)
      void queryClient.invalidateQueries({ queryKey: queryKeys.rooms, exact: true })
    },
  })
}

export function useRegenerateInviteCode(roomId: string) {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: () => api.post<Room>(path`/api/rooms/${roomId}/invite-code`),
    onSuccess: (room) => queryClient.setQueryData(queryKeys.room(roomId), room),
  })
}

export function useCreateFile(roomId: string) {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: (filename: string) => api.post<FileEntry>(path`/api/rooms/${roomId}/files`, { filename }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: queryKeys.files(roomId) }),
  })
}

export function useRenameFile(roomId: string) {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: (input: { fileId: string; filename: string }) =>
      api.patch<FileEntry>(path`/api/files/${input.fileId}`, { filename: input.filename }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: queryKeys.files(roomId) }),
  })
}

export function useDeleteFile(roomId: string) {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: (fileId: string) => api.delete(path`/api/files/${fileId}`),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: queryKeys.files(roomId) }),
  })
}

export function useChangeRole(roomId: string) {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: (input: { userId: string; role: Exclude<Role, 'owner'> }) =>
      api.patch<Member>(path`/api/rooms/${roomId}/members/${input.userId}`, { role: input.role }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: queryKeys.members(roomId) }),
  })
}

export function useRemoveMember(roomId: string) {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: (userId: string) => api.delete(path`/api/rooms/${roomId}/members/${userId}`),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: queryKeys.members(roomId) })
      void queryClient.invalidateQueries({ queryKey: queryKeys.room(roomId) })
    },
  })
}

/** A file with its content, for readers who are not members (no live connection for them). */
export function useFileContent(fileId: string | null, enabled: boolean) {
  return useQuery({
    queryKey: ['files', fileId, 'content'],
    queryFn: ({ signal }) => api.get<FileEntry>(path`/api/files/${fileId ?? ''}`, signal),
    enabled: enabled && fileId !== null,
  })
}

/** Why a file cannot be opened any more (deleted, access revoked), or null if it can or the server cannot tell now. */
export async function fileAccessProblem(fileId: string): Promise<string | null> {
  try {
    const file = await api.get<FileEntry>(path`/api/files/${fileId}`)
    // Anyone may read a public room's files; collaborating needs membership.
    return await roomAccessProblem(file.room_id)
  } catch (error) {
    if (error instanceof ApiError && (error.status === 403 || error.status === 404)) {
      return 'This file was deleted, or you no longer have access to it.'
    }
    return null
  }
}

/** Why the room's live connection cannot work any more, or null. */
export async function roomAccessProblem(roomId: string): Promise<string | null> {
  try {
    const room = await api.get<Room>(path`/api/rooms/${roomId}`)
    return room.my_role === null ? 'You are no longer a member of this room.' : null
  } catch (error) {
    if (error instanceof ApiError && (error.status === 403 || error.status === 404)) {
      return 'This room was deleted, or you no longer have access to it.'
    }
    return null
  }
}

export function useMoveFolder(roomId: string) {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: (input: { from: string; to: string }) => api.post<{ files: FileEntry[] }>(path`/api/rooms/${roomId}/folders/move`, input),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: queryKeys.files(roomId) }),
  })
}

export function useDeleteFolder(roomId: string) {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: (folder: string) => api.delete(`${path`/api/rooms/${roomId}/folders`}?path=${encodeURIComponent(folder)}`),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: queryKeys.files(roomId) }),
  })
}

export interface ArchiveEntry {
  path: string
  outcome: 'created' | 'replaced' | 'skipped' | 'accepted' | 'refused'
  file_id?: string
  error_code?: string
  message?: string
}

/** What an upload did: every entry's outcome, and whether anything was written (all or nothing). */
export interface ArchiveReport {
  written: boolean
  files: ArchiveEntry[]
  error?: { code: string; message: string }
}

/** Uploads a zip archive into the room; a refusal with a per-file report (422) is an answer, not an error. */
export function useUploadArchive(roomId: string) {
  const queryClient = useQueryClient()
  return useMutation({
    mutationFn: async (archive: Blob): Promise<ArchiveReport> => {
      const response = await api.fetchRaw('POST', path`/api/rooms/${roomId}/archive`, { data: archive, contentType: 'application/zip' })
      const body = (await response.json().catch(() => undefined)) as ArchiveReport | undefined
      if (response.ok || (response.status === 422 && body?.files)) return body as ArchiveReport
      throw errorFromResponse(response, body)
    },
    onSuccess: () => queryClient.invalidateQueries({ queryKey: queryKeys.files(roomId) }),
  })
}

/** Downloads the room's files as a zip (the live text) and hands it to the browser as a file. */
export async function downloadArchive(roomId: string, roomName: string): Promise<void> {
  const response = await api.fetchRaw('GET', path`/api/rooms/${roomId}/archive`)
  if (!response.ok) throw errorFromResponse(response, await response.json().catch(() => undefined))
  const blob = await response.blob()
  const disposition = response.headers.get('Content-Disposition') ?? ''
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? `${roomName || 'project'}.zip`
  const link = document.createElement('a')
  link.href = URL.createObjectURL(blob)
  link.download = name
  document.body.appendChild(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000)
}

export interface SearchMatch {
  file_id: string
  filename: string
  line: number
  column: number
  length: number
  text: string
}

export interface SearchOptions {
  query: string
  regex: boolean
  caseSensitive: boolean
  wholeWord: boolean
}

/** Searches the live text of the room's files. */
export function searchRoom(roomId: string, options: SearchOptions, signal?: AbortSignal) {
  const query = new URLSearchParams({ q: options.query })
  if (options.regex) query.set('regex', 'true')
  if (options.caseSensitive) query.set('case_sensitive', 'true')
  if (options.wholeWord) query.set('whole_word', 'true')
  return api.get<{ matches: SearchMatch[]; truncated: boolean; files_searched: number }>(
    `${path`/api/rooms/${roomId}/search`}?${query.toString()}`,
    signal,
  )
}
