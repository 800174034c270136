import { useEffect, useMemo, useRef } from 'react'
import { useQueryClient } from '@tanstack/react-query'
import { RoomConnection, TypingReporter } from './roomConnection'
import { webSocketBase } from './fileSession'
import { api, useSession } from '../state/session'
import { queryKeys, roomAccessProblem } from '../api/queries'
import { reduceRoomMessage, resetRoomLive, useRoomLive } from '../state/roomLive'

export interface RoomControls {
  focus: (fileId: string | null) => void
  sendChat: (text: string) => boolean
  edited: () => void
}

/** Opens the room's `/ws/rooms` socket for as long as the page shows the room (members only). */
export function useRoomConnection(roomId: string, enabled: boolean): RoomControls {
  const connectionRef = useRef<RoomConnection | null>(null)
  const typingRef = useRef<TypingReporter | null>(null)
  const signedIn = useSession((state) => state.status === 'signed_in')
  const queryClient = useQueryClient()

  useEffect(() => {
    resetRoomLive(roomId)
    if (!enabled || !signedIn) return
    const connection = new RoomConnection({
      url: (token) => `${webSocketBase(window.location)}/ws/rooms/${encodeURIComponent(roomId)}?token=${encodeURIComponent(token)}`,
      accessToken: () => api.freshAccessToken(),
      checkAccess: () => roomAccessProblem(roomId),
      onMessage: (message) => {
        // Someone created, moved or deleted a file: the tree shows it at once.
        if (message.type === 'file_changed') void queryClient.invalidateQueries({ queryKey: queryKeys.files(roomId) })
        useRoomLive.setState((state) => reduceRoomMessage(state, message))
      },
      onStatus: (status, reason) => useRoomLive.setState({ status, closedReason: reason ?? null }),
    })
    const typing = new TypingReporter((isTyping) => connection.send({ type: 'typing', typing: isTyping }))
    connectionRef.current = connection
    typingRef.current = typing
    connection.start()
    return () => {
      typing.stop()
      connection.stop()
      connectionRef.current = null
      typingRef.current = null
      // The next room (or the next user) must not show this room's chat, presence or closure.
      resetRoomLive(null)
    }
  }, [roomId, enabled, signedIn, queryClient])

  return useMemo(
    () => ({
      focus: (fileId) => connectionRef.current?.focus(fileId),
      sendChat: (text) => connectionRef.current?.send({ type: 'chat', text }) ?? false,
      edited: () => typingRef.current?.edited(),
    }),
    [],
  )
}
