// Ctrl/Cmd+P: any file of the room by a fuzzy match of its path.

import { useMemo, useState, type KeyboardEvent } from 'react'
import type { FileEntry } from '../api/types'
import { fuzzyScore } from '../files/tree'
import { Dialog } from './ui'

const SHOWN = 50

export function QuickOpen({ files, onOpen, onClose }: { files: FileEntry[]; onOpen: (fileId: string) => void; onClose: () => void }) {
  const [query, setQuery] = useState('')
  const [selected, setSelected] = useState(0)
  const matches = useMemo(
    () =>
      files
        .map((file) => ({ file, score: fuzzyScore(query, file.filename) }))
        .filter((match): match is { file: FileEntry; score: number } => match.score !== null)
        .sort((a, b) => b.score - a.score || a.file.filename.localeCompare(b.file.filename))
        .slice(0, SHOWN),
    [files, query],
  )
  const open = (file: FileEntry | undefined) => {
    if (!file) return
    onClose()
    onOpen(file.id)
  }
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key === 'ArrowDown') setSelected((index) => Math.min(index + 1, matches.length - 1))
    else if (event.key === 'ArrowUp') setSelected((index) => Math.max(index - 1, 0))
    else if (event.key === 'Enter') open(matches[selected]?.file)
    else return
    event.preventDefault()
  }
  return (
    <Dialog open title="Open a file" onClose={onClose}>
      <input
        autoFocus
        aria-label="File to open"
        placeholder="Type part of a file's path"
        value={query}
        onChange={(event) => {
          setQuery(event.target.value)
          setSelected(0)
        }}
        onKeyDown={onKeyDown}
        className="rounded-md border border-line bg-panel px-3 py-2 text-sm outline-none focus:border-accent"
      />
      <ul role="listbox" aria-label="Matching files" className="max-h-72 overflow-y-auto text-sm" data-testid="quick-open-results">
        {matches.map(({ file }, index) => (
          <li
            key={file.id}
            role="option"
            aria-selected={index === selected}
            onMouseDown={(event) => {
              event.preventDefault()
              open(file)
            }}
            className={`cursor-pointer truncate rounded px-2 py-1 ${index === selected ? 'bg-accent-soft text-fg' : 'text-muted'}`}
          >
            {file.filename}
          </li>
        ))}
        {matches.length === 0 && <li className="px-2 py-1 text-muted">No file matches.</li>}
      </ul>
    </Dialog>
  )
}
