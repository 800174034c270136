// The assistant beside the editor: a mode, a prompt, the answer streaming in (prose and code
// blocks), Stop, and "Insert at cursor" / "Replace selection", which edit the file like typing
// does, so every collaborator sees the code arrive.

import { useEffect, useRef, useState, type FormEvent } from 'react'
import { ask, cancelAnswer, MODES, splitAnswer, useAssistantStatus, type Mode } from '../api/assistant'
import { describeError } from '../api/client'
import type { FileEntry } from '../api/types'
import { editInShownEditor, editorPlace } from '../editor/CodeEditor'
import { historyOf, useAssistant, type Turn } from '../state/assistant'
import { AnswerText } from './AnswerText'
import { Button, Spinner } from './ui'

const modeHints: Record<Mode, string> = {
  chat: 'Ask anything about this file',
  explain: 'What should be explained? (the selection, or the file)',
  generate: 'Describe the code to write',
  complete: 'Optional hint for the completion at the cursor',
  review: 'Anything to focus the review on?',
  debug: 'What goes wrong? Paste the error if there is one',
  refactor: 'How should the selection change?',
  docs: 'Anything the documentation should say?',
}

const NO_TURNS: Turn[] = []

export function AssistantPanel({ roomId, file, canEdit }: { roomId: string; file: FileEntry | null; canEdit: boolean }) {
  const status = useAssistantStatus()
  const turns = useAssistant((state) => state.turns[roomId] ?? NO_TURNS)
  const askInRoom = useAssistant((state) => state.ask)
  const stop = useAssistant((state) => state.stop)
  const [mode, setMode] = useState<Mode>('chat')
  const [prompt, setPrompt] = useState('')
  const listRef = useRef<HTMLDivElement>(null)
  const streaming = turns.some((turn) => turn.status === 'streaming')
  const length = turns.reduce((total, turn) => total + turn.answer.length, 0)

  useEffect(() => {
    const list = listRef.current
    if (list) list.scrollTop = list.scrollHeight
  }, [length, turns.length])

  if (status.isPending) return <Spinner label="Asking whether an assistant is set up…" />
  if (status.data && !status.data.configured)
    return (
      <div className="flex flex-col gap-2 p-4 text-sm" data-testid="assistant-not-configured">
        <p className="font-medium text-fg">The assistant is not set up on this server.</p>
        <p className="text-muted">{status.data.message}</p>
      </div>
    )

  const submit = (event: FormEvent) => {
    event.preventDefault()
    if (streaming || (prompt.trim() === '' && file === null)) return
    const place = file ? editorPlace(file.id) : null
    void askInRoom(
      roomId,
      {
        mode,
        file_id: file?.id,
        prompt: prompt.trim(),
        cursor: place?.cursor,
        selection: place?.selection ?? undefined,
        // A chat goes on from the conversation so far; the other modes are one-off tasks.
        history: mode === 'chat' ? historyOf(turns) : undefined,
      },
      file?.filename ?? null,
      ask,
    )
    setPrompt('')
  }

  return (
    <div className="flex min-h-0 flex-1 flex-col" data-testid="assistant-panel">
      <div ref={listRef} className="min-h-0 flex-1 space-y-4 overflow-y-auto p-3" aria-live="polite">
        {turns.length === 0 && (
          <p className="text-sm text-muted">
            Ask about {file ? file.filename : 'your code'}. The assistant sees the file, your selection and your cursor.
            {status.data?.provider ? ` (${status.data.provider}, ${status.data.model})` : ''}
          </p>
        )}
        {turns.map((turn) => (
          <TurnView
            key={turn.id}
            turn={turn}
            fileId={file?.id ?? null}
            canEdit={canEdit}
            onStop={() => stop(roomId, turn.id, cancelAnswer)}
          />
        ))}
        {status.isError && <p className="text-sm text-danger">{describeError(status.error)}</p>}
      </div>
      <form onSubmit={submit} className="flex flex-col gap-2 border-t border-line p-3">
        <label className="flex items-center gap-2 text-xs text-muted">
          Mode
          <select
            value={mode}
            onChange={(event) => setMode(event.target.value as Mode)}
            className="rounded-md border border-line bg-canvas px-2 py-1 text-xs text-fg"
            data-testid="assistant-mode"
          >
            {MODES.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <textarea
          aria-label="Ask the assistant"
          value={prompt}
          onChange={(event) => setPrompt(event.target.value)}
          onKeyDown={(event) => {
            if (event.key === 'Enter' && !event.shiftKey) submit(event)
          }}
          rows={3}
          placeholder={modeHints[mode]}
          className="resize-none rounded-md border border-line bg-canvas px-2 py-1.5 text-sm text-fg outline-none focus:ring-1 focus:ring-accent"
        />
        <Button type="submit" variant="primary" disabled={streaming} className="self-end px-3 py-1 text-xs">
          Ask
        </Button>
      </form>
    </div>
  )
}

function TurnView({ turn, fileId, canEdit, onStop }: { turn: Turn; fileId: string | null; canEdit: boolean; onStop: () => void }) {
  return (
    <article className="space-y-2 text-sm" data-testid="assistant-turn">
      <p className="rounded-md bg-raised px-2 py-1.5 text-fg">
        <span className="mr-1.5 rounded bg-accent/15 px-1.5 py-0.5 text-[11px] font-medium text-accent">{turn.mode}</span>
        {turn.prompt || (turn.filename ? `(about ${turn.filename})` : '')}
      </p>
      <div className="space-y-2 text-fg" data-testid="assistant-answer">
        {splitAnswer(turn.answer).map((part, index) =>
          part.kind === 'text' ? (
            <AnswerText key={index} text={part.text} />
          ) : (
            <div key={index} className="overflow-hidden rounded-md border border-line">
              <pre className="overflow-x-auto bg-canvas px-2 py-1.5 font-mono text-[12.5px] leading-5">
                <code>{part.code}</code>
              </pre>
              {turn.status !== 'streaming' && fileId !== null && canEdit && (
                <div className="flex gap-1 border-t border-line bg-panel px-1 py-1">
                  <Button variant="ghost" className="px-2 py-0.5 text-xs" onClick={() => editInShownEditor(fileId, part.code, 'cursor')}>
                    Insert at cursor
                  </Button>
                  <Button variant="ghost" className="px-2 py-0.5 text-xs" onClick={() => editInShownEditor(fileId, part.code, 'selection')}>
                    Replace selection
                  </Button>
                </div>
              )}
            </div>
          ),
        )}
      </div>
      {turn.status === 'streaming' && (
        <div className="flex items-center gap-2">
          <Spinner small label={turn.answer ? 'Answering…' : 'Thinking…'} />
          <Button variant="secondary" className="px-2 py-0.5 text-xs" onClick={onStop}>
            Stop
          </Button>
        </div>
      )}
      {turn.status === 'stopped' && <p className="text-xs text-muted">Stopped.</p>}
      {turn.status === 'failed' && (
        <p role="alert" className="text-xs text-danger">
          {turn.error}
        </p>
      )}
      {turn.status === 'done' && turn.figures && (
        <p className="text-[11px] text-faint">
          {turn.figures.model} · first token {turn.figures.time_to_first_token_ms} ms · {turn.figures.latency_ms} ms ·{' '}
          {turn.figures.output_tokens} tokens
        </p>
      )}
    </article>
  )
}
