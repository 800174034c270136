import { useRef, useState, type FormEvent, type KeyboardEvent } from 'react'
import { describeError } from '../api/client'
import { useCreateFile, useDeleteFile, useRenameFile } from '../api/queries'
import type { FileEntry, PresenceUser } from '../api/types'
import { Alert, Avatar, Button, Dialog, IconButton, TextField } from './ui'
import { FileIcon, PencilIcon, PlusIcon, TrashIcon } from './icons'

interface FileTreeProps {
  roomId: string
  files: FileEntry[]
  activeFileId: string | null
  canEdit: boolean
  presence: PresenceUser[]
  myUserId: string
  onOpen: (fileId: string) => void
}

const dotColour: Record<string, string> = {
  python: '#3b82f6',
  javascript: '#eab308',
  typescript: '#3b82f6',
  java: '#f97316',
  cpp: '#6366f1',
  c: '#64748b',
  rust: '#d97706',
  go: '#06b6d4',
  html: '#ef4444',
  css: '#8b5cf6',
  json: '#a3a3a3',
  markdown: '#94a3b8',
}

export function FileTree({ roomId, files, activeFileId, canEdit, presence, myUserId, onOpen }: FileTreeProps) {
  const [creating, setCreating] = useState(false)
  const [renaming, setRenaming] = useState<FileEntry | null>(null)
  const [deleting, setDeleting] = useState<FileEntry | null>(null)
  const listRef = useRef<HTMLUListElement>(null)

  // Arrow keys move between files; F2 renames; Delete deletes (as in editors' explorers).
  const onKeyDown = (event: KeyboardEvent<HTMLButtonElement>, file: FileEntry) => {
    const buttons = [...(listRef.current?.querySelectorAll<HTMLButtonElement>('button[data-file-row]') ?? [])]
    const index = buttons.indexOf(event.currentTarget)
    if (event.key === 'ArrowDown') buttons[Math.min(index + 1, buttons.length - 1)]?.focus()
    else if (event.key === 'ArrowUp') buttons[Math.max(index - 1, 0)]?.focus()
    else if (event.key === 'F2' && canEdit) setRenaming(file)
    else if (event.key === 'Delete' && canEdit) setDeleting(file)
    else return
    event.preventDefault()
  }

  return (
    <nav aria-label="Files" className="flex min-h-0 flex-1 flex-col">
      <div className="flex h-9 items-center justify-between px-3">
        <h2 className="text-[11px] font-semibold tracking-wider text-faint uppercase">Files</h2>
        {canEdit && (
          <IconButton label="New file" onClick={() => setCreating(true)}>
            <PlusIcon />
          </IconButton>
        )}
      </div>
      {files.length === 0 ? (
        <div className="px-3 py-4 text-sm text-muted">
          No files yet.
          {canEdit && (
            <Button variant="ghost" className="mt-2 w-full justify-start" onClick={() => setCreating(true)}>
              <PlusIcon /> Create the first file
            </Button>
          )}
        </div>
      ) : (
        <ul ref={listRef} className="min-h-0 flex-1 overflow-y-auto px-1.5 pb-2">
          {files.map((file) => {
            const here = presence.filter((user) => user.file_id === file.id && user.user_id !== myUserId)
            const active = file.id === activeFileId
            return (
              <li key={file.id} className="group relative">
                <button
                  type="button"
                  data-file-row
                  aria-current={active ? 'page' : undefined}
                  onClick={() => onOpen(file.id)}
                  onKeyDown={(event) => onKeyDown(event, file)}
                  className={`flex w-full items-center gap-2 rounded-md px-2 py-1.5 text-left text-[13px] ${
                    active ? 'bg-accent-soft text-fg' : 'text-muted hover:bg-hover hover:text-fg'
                  }`}
                >
                  <span
                    className="h-2 w-2 shrink-0 rounded-sm"
                    style={{ backgroundColor: dotColour[file.language] ?? '#64748b' }}
                    aria-hidden="true"
                  />
                  <span className="min-w-0 flex-1 truncate">{file.filename}</span>
                  <span
                    className="flex -space-x-1.5 group-focus-within:hidden group-hover:hidden"
                    aria-label={here.length ? `${here.map((user) => user.username).join(', ')} here` : undefined}
                  >
                    {here.slice(0, 3).map((user) => (
                      <Avatar key={user.user_id} name={user.username} colour={user.color} size={16} ring />
                    ))}
                  </span>
                </button>
                {canEdit && (
                  <span className="absolute top-1/2 right-1 hidden -translate-y-1/2 items-center group-focus-within:flex group-hover:flex">
                    <IconButton label={`Rename ${file.filename}`} onClick={() => setRenaming(file)} className="h-6 w-6">
                      <PencilIcon />
                    </IconButton>
                    <IconButton label={`Delete ${file.filename}`} onClick={() => setDeleting(file)} className="h-6 w-6 hover:text-danger">
                      <TrashIcon />
                    </IconButton>
                  </span>
                )}
              </li>
            )
          })}
        </ul>
      )}
      <CreateFileDialog roomId={roomId} open={creating} onClose={() => setCreating(false)} onCreated={onOpen} />
      {renaming && <RenameFileDialog roomId={roomId} file={renaming} onClose={() => setRenaming(null)} />}
      {deleting && <DeleteFileDialog roomId={roomId} file={deleting} onClose={() => setDeleting(null)} />}
    </nav>
  )
}

function CreateFileDialog({
  roomId,
  open,
  onClose,
  onCreated,
}: {
  roomId: string
  open: boolean
  onClose: () => void
  onCreated: (fileId: string) => void
}) {
  const [filename, setFilename] = useState('')
  const create = useCreateFile(roomId)
  const close = () => {
    create.reset()
    setFilename('')
    onClose()
  }
  const submit = (event: FormEvent) => {
    event.preventDefault()
    create.mutate(filename.trim(), {
      onSuccess: (file) => {
        close()
        onCreated(file.id)
      },
    })
  }
  return (
    <Dialog open={open} title="New file" onClose={close}>
      <form onSubmit={submit} className="flex flex-col gap-4">
        <TextField
          id="new-filename"
          label="File name"
          placeholder="main.py"
          autoFocus
          required
          value={filename}
          onChange={(event) => setFilename(event.target.value)}
          hint="The extension sets the language: .py, .js, .ts, .java, .cpp, .c, .rs, .go, …"
          error={create.isError ? describeError(create.error) : null}
        />
        <div className="flex justify-end gap-2">
          <Button onClick={close}>Cancel</Button>
          <Button type="submit" variant="primary" busy={create.isPending} disabled={filename.trim() === ''}>
            Create file
          </Button>
        </div>
      </form>
    </Dialog>
  )
}

function RenameFileDialog({ roomId, file, onClose }: { roomId: string; file: FileEntry; onClose: () => void }) {
  const [filename, setFilename] = useState(file.filename)
  const rename = useRenameFile(roomId)
  const submit = (event: FormEvent) => {
    event.preventDefault()
    if (filename.trim() === file.filename) return onClose()
    rename.mutate({ fileId: file.id, filename: filename.trim() }, { onSuccess: onClose })
  }
  return (
    <Dialog open title={`Rename ${file.filename}`} labelledBy="rename-title" onClose={onClose}>
      <form onSubmit={submit} className="flex flex-col gap-4">
        <TextField
          id="rename-filename"
          label="New name"
          autoFocus
          required
          value={filename}
          onChange={(event) => setFilename(event.target.value)}
          error={rename.isError ? describeError(rename.error) : null}
        />
        <div className="flex justify-end gap-2">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={rename.isPending} disabled={filename.trim() === ''}>
            Rename
          </Button>
        </div>
      </form>
    </Dialog>
  )
}

function DeleteFileDialog({ roomId, file, onClose }: { roomId: string; file: FileEntry; onClose: () => void }) {
  const remove = useDeleteFile(roomId)
  return (
    <Dialog open title={`Delete ${file.filename}?`} labelledBy="delete-title" onClose={onClose}>
      <p className="text-sm text-muted">
        The file and its content are deleted for everyone in the room. Anyone editing it is disconnected.
      </p>
      {remove.isError && <Alert>{describeError(remove.error)}</Alert>}
      <div className="flex justify-end gap-2">
        <Button onClick={onClose} autoFocus>
          Cancel
        </Button>
        <Button variant="danger" busy={remove.isPending} onClick={() => remove.mutate(file.id, { onSuccess: onClose })}>
          <FileIcon /> Delete file
        </Button>
      </div>
    </Dialog>
  )
}
