// Ctrl/Cmd+Shift+F: the live text of every file of the room, plain or as a regular expression.

import { useEffect, useRef, useState, type FormEvent } from 'react'
import { describeError } from '../api/client'
import { searchRoom, type SearchMatch } from '../api/queries'
import { Alert } from './ui'

export function SearchPanel({ roomId, onOpen }: { roomId: string; onOpen: (match: SearchMatch) => void }) {
  const [query, setQuery] = useState('')
  const [regex, setRegex] = useState(false)
  const [caseSensitive, setCaseSensitive] = useState(false)
  const [wholeWord, setWholeWord] = useState(false)
  const [result, setResult] = useState<{ matches: SearchMatch[]; truncated: boolean } | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const inputRef = useRef<HTMLInputElement>(null)
  const inFlight = useRef<AbortController | null>(null)

  useEffect(() => inputRef.current?.focus(), [])
  useEffect(() => () => inFlight.current?.abort(), [])

  const search = (event?: FormEvent) => {
    event?.preventDefault()
    if (query === '') return
    inFlight.current?.abort()
    const controller = new AbortController()
    inFlight.current = controller
    setBusy(true)
    setError(null)
    searchRoom(roomId, { query, regex, caseSensitive, wholeWord }, controller.signal)
      .then((answer) => setResult(answer))
      .catch((reason: unknown) => {
        if (!controller.signal.aborted) setError(describeError(reason))
      })
      .finally(() => {
        if (inFlight.current === controller) setBusy(false)
      })
  }

  const toggle = (label: string, short: string, on: boolean, set: (value: boolean) => void) => (
    <button
      type="button"
      aria-pressed={on}
      title={label}
      aria-label={label}
      onClick={() => set(!on)}
      className={`rounded px-1.5 py-0.5 font-mono text-xs ${on ? 'bg-accent-soft text-fg' : 'text-muted hover:bg-hover'}`}
    >
      {short}
    </button>
  )

  const byFile = new Map<string, SearchMatch[]>()
  for (const match of result?.matches ?? []) byFile.set(match.filename, [...(byFile.get(match.filename) ?? []), match])

  return (
    <div className="flex min-h-0 flex-1 flex-col" data-testid="search-panel">
      <form onSubmit={search} className="flex flex-col gap-2 border-b border-line p-3">
        <input
          ref={inputRef}
          aria-label="Search the room's files"
          placeholder="Search every file"
          value={query}
          onChange={(event) => setQuery(event.target.value)}
          className="rounded-md border border-line bg-panel px-3 py-1.5 text-sm outline-none focus:border-accent"
        />
        <div className="flex items-center gap-1">
          {toggle('Match case', 'Aa', caseSensitive, setCaseSensitive)}
          {toggle('Whole word', 'ab', wholeWord, setWholeWord)}
          {toggle('Regular expression', '.*', regex, setRegex)}
          <span className="ml-auto text-xs text-muted" role="status">
            {busy ? 'Searching…' : result ? `${result.matches.length}${result.truncated ? '+' : ''} results` : ''}
          </span>
        </div>
      </form>
      {error && (
        <div className="p-3">
          <Alert>{error}</Alert>
        </div>
      )}
      <ul className="min-h-0 flex-1 overflow-y-auto p-2 text-xs" data-testid="search-results">
        {[...byFile.entries()].map(([filename, matches]) => (
          <li key={filename} className="mb-2">
            <div className="truncate px-1 py-0.5 font-semibold text-fg">{filename}</div>
            <ul>
              {matches.map((match) => (
                <li key={`${match.line}:${match.column}`}>
                  <button
                    type="button"
                    onClick={() => onOpen(match)}
                    className="flex w-full gap-2 truncate rounded px-1 py-0.5 text-left text-muted hover:bg-hover hover:text-fg"
                  >
                    <span className="shrink-0 text-faint">{match.line}</span>
                    <span className="truncate font-mono">{match.text}</span>
                  </button>
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ul>
    </div>
  )
}
