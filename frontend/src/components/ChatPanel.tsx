import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react'
import { useRoomLive } from '../state/roomLive'
import { clockTime } from '../format'
import { colourForUser } from '../collab/protocol'
import { Avatar, Button, EmptyState } from './ui'

const MAX_CHAT_CHARACTERS = 2000
/** A sent message not echoed within this long goes back into the box. */
const PENDING_TIMEOUT_MS = 10_000

interface PendingMessage {
  text: string
  /** Messages already shown when it was sent: an older identical message is not its echo. */
  knownIds: Set<string>
  errorCountBefore: number
  /** When it goes back into the box if no echo came (a fixed time, not reset by other messages). */
  deadline: number
}

export function ChatPanel({ myUserId, onSend }: { myUserId: string; onSend: (text: string) => boolean }) {
  const chat = useRoomLive((state) => state.chat)
  const chatError = useRoomLive((state) => state.chatError)
  const chatErrorCount = useRoomLive((state) => state.chatErrorCount)
  const status = useRoomLive((state) => state.status)
  const [draft, setDraft] = useState('')
  const [notice, setNotice] = useState<string | null>(null)
  // A sent message until the server echoes it (its confirmation: stored) or refuses it.
  const [pending, setPending] = useState<PendingMessage | null>(null)
  const listRef = useRef<HTMLOListElement>(null)
  const stickToBottom = useRef(true)

  // Follow new messages unless the reader scrolled up to read older ones.
  useEffect(() => {
    const list = listRef.current
    if (list && stickToBottom.current) list.scrollTop = list.scrollHeight
  }, [chat])

  // The echo confirms; a refusal or silence puts the text back in the box (after any new draft).
  const [maybeSent, setMaybeSent] = useState<PendingMessage | null>(null)
  const echoed = (message: PendingMessage) =>
    chat.some((candidate) => candidate.user_id === myUserId && candidate.text === message.text && !message.knownIds.has(candidate.id))
  const putBack = (text: string) => setDraft((current) => (current.trim() === '' ? text : `${current}\n${text}`))

  useEffect(() => {
    if (pending === null) return
    if (echoed(pending)) {
      setPending(null)
      return
    }
    if (chatErrorCount !== pending.errorCountBefore) {
      putBack(pending.text)
      setNotice(null)
      setPending(null)
      return
    }
    const timer = setTimeout(
      () => {
        putBack(pending.text)
        setNotice('Your last message may not have been sent: it is back in the box.')
        setMaybeSent(pending)
        setPending(null)
      },
      Math.max(0, pending.deadline - Date.now()),
    )
    return () => clearTimeout(timer)
  }, [pending, chat, chatErrorCount, myUserId])

  // A late echo of a message put back in the box: it was sent after all, so it leaves the box.
  useEffect(() => {
    if (maybeSent === null || !echoed(maybeSent)) return
    setDraft((current) => (current === maybeSent.text ? '' : current))
    setNotice(null)
    setMaybeSent(null)
  }, [chat, maybeSent])

  const send = (event?: FormEvent) => {
    event?.preventDefault()
    const text = draft.trim()
    if (text === '' || pending !== null) return
    if (onSend(text)) {
      setPending({
        text,
        knownIds: new Set(chat.map((message) => message.id)),
        errorCountBefore: chatErrorCount,
        deadline: Date.now() + PENDING_TIMEOUT_MS,
      })
      setMaybeSent(null)
      setDraft('')
      setNotice(null)
      stickToBottom.current = true
    } else {
      setNotice('Not connected: your message is kept; send it again once reconnected.')
    }
  }
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault()
      send()
    }
  }

  return (
    <section aria-labelledby="chat-heading" className="flex min-h-0 flex-1 flex-col">
      <h2 id="chat-heading" className="flex h-9 shrink-0 items-center px-3 text-[11px] font-semibold tracking-wider text-faint uppercase">
        Chat
      </h2>
      <ol
        ref={listRef}
        aria-live="polite"
        aria-label="Chat messages"
        data-testid="chat-messages"
        onScroll={(event) => {
          const list = event.currentTarget
          stickToBottom.current = list.scrollHeight - list.scrollTop - list.clientHeight < 40
        }}
        className="min-h-0 flex-1 overflow-y-auto px-3"
      >
        {chat.length === 0 && (
          <li>
            <EmptyState title="No messages yet">Say hello to the room.</EmptyState>
          </li>
        )}
        {chat.map((message, index) => {
          const previous = chat[index - 1]
          const grouped =
            previous !== undefined &&
            previous.user_id === message.user_id &&
            Date.parse(message.sent_at) - Date.parse(previous.sent_at) < 120_000
          return (
            <li key={message.id} className={`flex gap-2 ${grouped ? 'mt-0.5' : 'mt-3'}`} data-testid="chat-message">
              <span className="w-6 shrink-0">
                {!grouped && <Avatar name={message.username} colour={colourForUser(message.user_id)} size={24} />}
              </span>
              <div className="min-w-0 flex-1">
                {!grouped && (
                  <div className="flex items-baseline gap-2">
                    <span className="text-[13px] font-medium text-fg">{message.user_id === myUserId ? 'You' : message.username}</span>
                    <time dateTime={message.sent_at} className="text-[11px] text-faint">
                      {clockTime(message.sent_at)}
                    </time>
                  </div>
                )}
                <p className="text-[13px] break-words whitespace-pre-wrap text-muted">{message.text}</p>
              </div>
            </li>
          )
        })}
        {pending && (
          <li className="mt-2 flex gap-2 opacity-60" data-testid="chat-pending">
            <span className="w-6 shrink-0" />
            <p className="min-w-0 flex-1 text-[13px] break-words whitespace-pre-wrap text-muted">
              {pending.text} <span className="text-[11px] text-faint">· sending…</span>
            </p>
          </li>
        )}
      </ol>
      <form onSubmit={send} className="shrink-0 border-t border-line p-2">
        <label htmlFor="chat-input" className="sr-only">
          Message the room
        </label>
        <textarea
          id="chat-input"
          rows={2}
          maxLength={MAX_CHAT_CHARACTERS}
          value={draft}
          onChange={(event) => setDraft(event.target.value)}
          onKeyDown={onKeyDown}
          placeholder={status === 'connected' ? 'Message the room (Enter to send)' : 'Reconnecting…'}
          className="w-full resize-none rounded-md border border-line bg-canvas px-2.5 py-2 text-[13px] text-fg placeholder:text-faint focus:border-accent focus:outline-none"
        />
        <div className="mt-1 flex items-center justify-between gap-2">
          <ChatNotice text={notice ?? (chatErrorCount > 0 ? chatError : null)} />
          <Button type="submit" variant="primary" className="px-2.5 py-1 text-xs" disabled={draft.trim() === '' || pending !== null}>
            Send
          </Button>
        </div>
      </form>
    </section>
  )
}

function ChatNotice({ text }: { text: string | null }) {
  if (!text) return <span className="min-h-4" />
  return (
    <p role="alert" className="min-h-4 text-[11px] text-danger">
      {text}
    </p>
  )
}
