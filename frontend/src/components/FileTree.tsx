import { useMemo, useRef, useState, type DragEvent, type FormEvent, type KeyboardEvent, type ReactNode } from 'react'
import { ApiError, describeError } from '../api/client'
import {
  downloadArchive,
  useCreateFile,
  useDeleteFile,
  useDeleteFolder,
  useMoveFolder,
  useRenameFile,
  useUploadArchive,
  type ArchiveReport,
} from '../api/queries'
import type { FileEntry, PresenceUser } from '../api/types'
import { buildTree, isInside, type TreeNode } from '../files/tree'
import { readDropped, storedZip } from '../files/zip'
import { Alert, Avatar, Button, Dialog, IconButton, TextField } from './ui'
import { ChevronIcon, DownloadIcon, FileIcon, FolderIcon, FolderPlusIcon, PencilIcon, PlusIcon, TrashIcon, UploadIcon } from './icons'

interface FileTreeProps {
  roomId: string
  roomName: string
  files: FileEntry[]
  activeFileId: string | null
  canEdit: boolean
  presence: PresenceUser[]
  myUserId: string
  onOpen: (fileId: string) => void
}

/** A row dragged within the tree (what the desktop drops carries `Files` instead). */
type Dragged = { kind: 'file'; fileId: string; path: string } | { kind: 'folder'; path: string }

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

export function FileTree({ roomId, roomName, files, activeFileId, canEdit, presence, myUserId, onOpen }: FileTreeProps) {
  const [creatingIn, setCreatingIn] = useState<string | null>(null)
  const [makingFolderIn, setMakingFolderIn] = useState<string | null>(null)
  const [renaming, setRenaming] = useState<FileEntry | null>(null)
  const [deleting, setDeleting] = useState<FileEntry | null>(null)
  const [movingFolder, setMovingFolder] = useState<string | null>(null)
  const [deletingFolder, setDeletingFolder] = useState<string | null>(null)
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set())
  // Folders made here that hold no file yet: a folder exists on the server only through its files.
  const [newFolders, setNewFolders] = useState<string[]>([])
  const [report, setReport] = useState<ArchiveReport | null>(null)
  const [transferError, setTransferError] = useState<string | null>(null)
  const [dropping, setDropping] = useState(false)
  const [leftOut, setLeftOut] = useState<string[]>([])
  const upload = useUploadArchive(roomId)
  const rename = useRenameFile(roomId)
  const moveFolder = useMoveFolder(roomId)
  // The row being dragged, and the folder it would land in ('' for the top).
  const dragged = useRef<Dragged | null>(null)
  const [dropTarget, setDropTarget] = useState<string | null>(null)
  const pickerRef = useRef<HTMLInputElement>(null)
  const listRef = useRef<HTMLUListElement>(null)

  const pendingFolders = newFolders.filter((folder) => !files.some((file) => isInside(file.filename, folder)))
  const tree = useMemo(() => buildTree(files, pendingFolders), [files, pendingFolders])

  const toggle = (path: string) =>
    setCollapsed((current) => {
      const next = new Set(current)
      if (next.has(path)) next.delete(path)
      else next.add(path)
      return next
    })

  // Arrow keys move between rows; F2 renames; Delete deletes (as in editors' explorers).
  const onKeyDown = (event: KeyboardEvent<HTMLButtonElement>, node: TreeNode<FileEntry>) => {
    const buttons = [...(listRef.current?.querySelectorAll<HTMLButtonElement>('button[data-file-row]') ?? [])]
    const index = buttons.indexOf(event.currentTarget)
    if (event.key === 'ArrowDown') buttons[Math.min(index + 1, buttons.length - 1)]?.focus()
    else if (event.key === 'ArrowUp') buttons[Math.max(index - 1, 0)]?.focus()
    else if (event.key === 'ArrowRight' && node.kind === 'folder' && collapsed.has(node.path)) toggle(node.path)
    else if (event.key === 'ArrowLeft' && node.kind === 'folder' && !collapsed.has(node.path)) toggle(node.path)
    else if (event.key === 'F2' && canEdit) node.kind === 'file' ? setRenaming(node.file) : setMovingFolder(node.path)
    else if (event.key === 'Delete' && canEdit) node.kind === 'file' ? setDeleting(node.file) : setDeletingFolder(node.path)
    else return
    event.preventDefault()
  }

  const sendArchive = (archive: Blob) => {
    setTransferError(null)
    upload.mutate(archive, {
      onSuccess: (answer) => setReport(answer),
      onError: (error) => setTransferError(describeError(error)),
    })
  }
  // A dropped .zip goes up as it is; dropped folders and files go up as a zip made here.
  const onDrop = (event: DragEvent) => {
    if (!canEdit) return
    event.preventDefault()
    setDropping(false)
    setLeftOut([])
    const files = [...event.dataTransfer.files]
    const archive = files.find((file) => file.name.toLowerCase().endsWith('.zip'))
    if (archive && files.length === 1) return sendArchive(archive)
    // Entries must be taken while the event lasts.
    const entries = [...event.dataTransfer.items]
      .map((item) => item.webkitGetAsEntry())
      .filter((entry): entry is FileSystemEntry => entry !== null)
    void readDropped(entries)
      .then((dropped) => {
        setLeftOut(dropped.leftOut)
        if (dropped.files.length === 0) setTransferError('Nothing to upload: drop a .zip, or folders of text files.')
        else sendArchive(storedZip(dropped.files))
      })
      .catch((error: unknown) => setTransferError(`The dropped files cannot be read: ${describeError(error)}`))
  }

  // A row dropped on a folder (or on a file, for that file's folder) moves there, keeping its name.
  const moveInto = (folder: string) => {
    const item = dragged.current
    dragged.current = null
    setDropTarget(null)
    if (!item) return
    const to = within(folder, item.path.slice(item.path.lastIndexOf('/') + 1))
    if (to === item.path) return
    if (item.kind === 'folder' && (folder === item.path || isInside(folder, item.path))) {
      setTransferError(`${item.path} cannot go inside itself.`)
      return
    }
    setTransferError(null)
    const failed = (error: unknown) => setTransferError(describeError(error))
    if (item.kind === 'file') return rename.mutate({ fileId: item.fileId, filename: to }, { onError: failed })
    const movedHere = () => setNewFolders((current) => current.map((path) => (path === item.path ? to : path)))
    moveFolder.mutate(
      { from: item.path, to },
      {
        onSuccess: movedHere,
        // A folder made here with no file yet exists only in this tab: it moves here alone.
        onError: (error) => (error instanceof ApiError && error.code === 'file_not_found' ? movedHere() : failed(error)),
      },
    )
  }
  const dragFrom = (item: Dragged) =>
    canEdit
      ? {
          draggable: true,
          onDragStart: (event: DragEvent) => {
            dragged.current = item
            event.dataTransfer.effectAllowed = 'move'
            event.dataTransfer.setData('text/plain', item.path)
          },
          onDragEnd: () => {
            dragged.current = null
            setDropTarget(null)
          },
        }
      : {}
  const dropInto = (target: string) =>
    canEdit
      ? {
          onDragOver: (event: DragEvent) => {
            if (!dragged.current) return
            event.preventDefault()
            event.stopPropagation()
            setDropTarget(target)
          },
          onDrop: (event: DragEvent) => {
            if (!dragged.current) return
            event.preventDefault()
            event.stopPropagation()
            moveInto(target)
          },
        }
      : {}
  const parentOf = (path: string) => path.slice(0, Math.max(path.lastIndexOf('/'), 0))

  const renderNode = (node: TreeNode<FileEntry>, depth: number): ReactNode => {
    const indent = { paddingLeft: `${8 + depth * 12}px` }
    if (node.kind === 'folder') {
      const open = !collapsed.has(node.path)
      return (
        <li
          key={`folder:${node.path}`}
          className={`group relative rounded-md ${dropTarget === node.path ? 'bg-accent-soft' : ''}`}
          {...dropInto(node.path)}
        >
          <button
            type="button"
            data-file-row
            data-folder={node.path}
            {...dragFrom({ kind: 'folder', path: node.path })}
            aria-expanded={open}
            onClick={() => toggle(node.path)}
            onKeyDown={(event) => onKeyDown(event, node)}
            style={indent}
            className="flex w-full items-center gap-1.5 rounded-md py-1.5 pr-2 text-left text-[13px] text-muted hover:bg-hover hover:text-fg"
          >
            <ChevronIcon open={open} />
            <FolderIcon />
            <span className="min-w-0 flex-1 truncate">{node.name}</span>
          </button>
          {canEdit && (
            <span className="absolute top-0 right-1 hidden h-[30px] items-center group-focus-within:flex group-hover:flex">
              <IconButton label={`Add a file to ${node.path}`} onClick={() => setCreatingIn(node.path)} className="h-6 w-6">
                <PlusIcon />
              </IconButton>
              <IconButton label={`Add a folder to ${node.path}`} onClick={() => setMakingFolderIn(node.path)} className="h-6 w-6">
                <FolderPlusIcon />
              </IconButton>
              <IconButton label={`Move folder ${node.path}`} onClick={() => setMovingFolder(node.path)} className="h-6 w-6">
                <PencilIcon />
              </IconButton>
              <IconButton
                label={`Delete folder ${node.path}`}
                onClick={() => setDeletingFolder(node.path)}
                className="h-6 w-6 hover:text-danger"
              >
                <TrashIcon />
              </IconButton>
            </span>
          )}
        </li>
      )
    }
    const file = node.file
    const here = presence.filter((user) => user.file_id === file.id && user.user_id !== myUserId)
    const active = file.id === activeFileId
    return (
      <li key={file.id} className="group relative" {...dropInto(parentOf(file.filename))}>
        <button
          type="button"
          data-file-row
          data-path={file.filename}
          {...dragFrom({ kind: 'file', fileId: file.id, path: file.filename })}
          aria-current={active ? 'page' : undefined}
          title={file.filename}
          onClick={() => onOpen(file.id)}
          onKeyDown={(event) => onKeyDown(event, node)}
          style={indent}
          className={`flex w-full items-center gap-2 rounded-md py-1.5 pr-2 text-left text-[13px] ${
            active ? 'bg-accent-soft text-fg' : 'text-muted hover:bg-hover hover:text-fg'
          }`}
        >
          <span
            className="ml-[18px] h-2 w-2 shrink-0 rounded-sm"
            style={{ backgroundColor: dotColour[file.language] ?? '#64748b' }}
            aria-hidden="true"
          />
          <span className="min-w-0 flex-1 truncate">{node.name}</span>
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
  }

  return (
    <nav
      aria-label="Files"
      className={`flex min-h-0 flex-1 flex-col ${
        dropping || dropTarget === '' ? 'outline-2 -outline-offset-2 outline-accent outline-dashed' : ''
      }`}
      onDragOver={(event) => {
        if (dragged.current) {
          event.preventDefault()
          setDropTarget('')
          return
        }
        if (!canEdit || !event.dataTransfer.types.includes('Files')) return
        event.preventDefault()
        setDropping(true)
      }}
      onDragLeave={() => setDropping(false)}
      onDrop={(event) => {
        if (!dragged.current) return onDrop(event)
        event.preventDefault()
        moveInto('')
      }}
    >
      <div className="flex h-9 items-center justify-between px-3">
        <h2 className="text-[11px] font-semibold tracking-wider text-faint uppercase">Files</h2>
        <span className="flex items-center">
          {canEdit && (
            <IconButton label="New file" onClick={() => setCreatingIn('')}>
              <PlusIcon />
            </IconButton>
          )}
          {canEdit && (
            <IconButton label="New folder" onClick={() => setMakingFolderIn('')}>
              <FolderPlusIcon />
            </IconButton>
          )}
          {canEdit && (
            <IconButton label="Upload a project (.zip)" onClick={() => pickerRef.current?.click()} disabled={upload.isPending}>
              <UploadIcon />
            </IconButton>
          )}
          {files.length > 0 && (
            <IconButton
              label="Download the project (.zip)"
              onClick={() => {
                setTransferError(null)
                downloadArchive(roomId, roomName).catch((error: unknown) => setTransferError(describeError(error)))
              }}
            >
              <DownloadIcon />
            </IconButton>
          )}
        </span>
        <input
          ref={pickerRef}
          type="file"
          accept=".zip,application/zip"
          className="hidden"
          data-testid="archive-picker"
          onChange={(event) => {
            const archive = event.target.files?.[0]
            event.target.value = ''
            if (archive) sendArchive(archive)
          }}
        />
      </div>
      {upload.isPending && (
        <p className="px-3 pb-2 text-xs text-muted" role="status">
          Uploading the project…
        </p>
      )}
      {transferError && (
        <div className="px-3 pb-2">
          <Alert>{transferError}</Alert>
        </div>
      )}
      {files.length === 0 && pendingFolders.length === 0 ? (
        <div className="px-3 py-4 text-sm text-muted">
          No files yet.
          {canEdit && (
            <>
              <Button variant="ghost" className="mt-2 w-full justify-start" onClick={() => setCreatingIn('')}>
                <PlusIcon /> Create the first file
              </Button>
              <p className="mt-2 text-xs">Or drop a project here: a .zip, or its folder.</p>
            </>
          )}
        </div>
      ) : (
        <ul ref={listRef} className="min-h-0 flex-1 overflow-y-auto px-1.5 pb-2">
          {visibleRows(tree, collapsed).map(({ node, depth }) => renderNode(node, depth))}
        </ul>
      )}
      <CreateFileDialog roomId={roomId} folder={creatingIn} onClose={() => setCreatingIn(null)} onCreated={(fileId) => onOpen(fileId)} />
      {makingFolderIn !== null && (
        <NewFolderDialog
          parent={makingFolderIn}
          taken={(path) => files.some((file) => file.filename === path || isInside(file.filename, path))}
          onClose={() => setMakingFolderIn(null)}
          onMade={(path) => {
            setNewFolders((current) => [...current, path])
            setMakingFolderIn(null)
            setCreatingIn(path)
          }}
        />
      )}
      {renaming && <RenameFileDialog roomId={roomId} file={renaming} onClose={() => setRenaming(null)} />}
      {deleting && <DeleteFileDialog roomId={roomId} file={deleting} onClose={() => setDeleting(null)} />}
      {movingFolder !== null && (
        <MoveFolderDialog
          roomId={roomId}
          folder={movingFolder}
          onClose={() => setMovingFolder(null)}
          onMoved={(to) => setNewFolders((current) => current.map((path) => (path === movingFolder ? to : path)))}
        />
      )}
      {deletingFolder !== null && (
        <DeleteFolderDialog
          roomId={roomId}
          folder={deletingFolder}
          count={files.filter((file) => isInside(file.filename, deletingFolder)).length}
          onClose={() => {
            setNewFolders((current) => current.filter((path) => !isInside(path, deletingFolder) && path !== deletingFolder))
            setDeletingFolder(null)
          }}
        />
      )}
      {report && <ArchiveReportDialog report={report} leftOut={leftOut} onClose={() => setReport(null)} />}
    </nav>
  )
}

/** The rows on screen, in order: a flat list (hovering a folder's row shows its actions, not its children's). */
function visibleRows(nodes: TreeNode<FileEntry>[], collapsed: Set<string>, depth = 0): { node: TreeNode<FileEntry>; depth: number }[] {
  return nodes.flatMap((node) => [
    { node, depth },
    ...(node.kind === 'folder' && !collapsed.has(node.path) ? visibleRows(node.children, collapsed, depth + 1) : []),
  ])
}

/** `folder/name`, or `name` at the top. */
const within = (folder: string, name: string) => (folder === '' ? name : `${folder}/${name}`)

function CreateFileDialog({
  roomId,
  folder,
  onClose,
  onCreated,
}: {
  roomId: string
  folder: string | null
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
    create.mutate(within(folder ?? '', filename.trim()), {
      onSuccess: (file) => {
        close()
        onCreated(file.id)
      },
    })
  }
  return (
    <Dialog open={folder !== null} title="New file" onClose={close}>
      <form onSubmit={submit} className="flex flex-col gap-4">
        <TextField
          id="new-filename"
          label="File name"
          placeholder="main.py"
          autoFocus
          required
          value={filename}
          onChange={(event) => setFilename(event.target.value)}
          hint={`${folder ? `In ${folder}/. ` : ''}The extension sets the language: .py, .js, .ts, .java, .cpp, …; a path such as src/app/main.py makes the folders.`}
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

function NewFolderDialog({
  parent,
  taken,
  onClose,
  onMade,
}: {
  parent: string
  taken: (path: string) => boolean
  onClose: () => void
  onMade: (path: string) => void
}) {
  const [name, setName] = useState('')
  const trimmed = name.trim().replace(/^\/+|\/+$/g, '')
  const problem =
    trimmed.split('/').some((part) => part === '' || part === '.' || part === '..') && trimmed !== ''
      ? 'A folder name cannot be empty, “.” or “..”.'
      : taken(within(parent, trimmed))
        ? 'That name is taken.'
        : null
  return (
    <Dialog open title="New folder" onClose={onClose}>
      <form
        onSubmit={(event) => {
          event.preventDefault()
          if (problem === null && trimmed !== '') onMade(within(parent, trimmed))
        }}
        className="flex flex-col gap-4"
      >
        <TextField
          id="new-folder"
          label="Folder name"
          placeholder="src"
          autoFocus
          required
          value={name}
          onChange={(event) => setName(event.target.value)}
          hint={`${parent ? `In ${parent}/. ` : ''}A folder holds files: create its first file next.`}
          error={problem}
        />
        <div className="flex justify-end gap-2">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" disabled={trimmed === '' || problem !== null}>
            Create folder
          </Button>
        </div>
      </form>
    </Dialog>
  )
}

/** One path to type: a file's new name, a folder's new place. */
function PathDialog({
  title,
  id,
  label,
  initial,
  hint,
  submitLabel,
  busy,
  error,
  onSubmit,
  onClose,
}: {
  title: string
  id: string
  label: string
  initial: string
  hint: string
  submitLabel: string
  busy: boolean
  error: string | null
  onSubmit: (value: string) => void
  onClose: () => void
}) {
  const [value, setValue] = useState(initial)
  return (
    <Dialog open title={title} onClose={onClose}>
      <form
        onSubmit={(event) => {
          event.preventDefault()
          if (value.trim() === initial) onClose()
          else onSubmit(value.trim())
        }}
        className="flex flex-col gap-4"
      >
        <TextField
          id={id}
          label={label}
          autoFocus
          required
          value={value}
          onChange={(event) => setValue(event.target.value)}
          hint={hint}
          error={error}
        />
        <div className="flex justify-end gap-2">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy} disabled={value.trim() === ''}>
            {submitLabel}
          </Button>
        </div>
      </form>
    </Dialog>
  )
}

function RenameFileDialog({ roomId, file, onClose }: { roomId: string; file: FileEntry; onClose: () => void }) {
  const rename = useRenameFile(roomId)
  return (
    <PathDialog
      title={`Rename ${file.filename}`}
      id="rename-filename"
      label="New name"
      initial={file.filename}
      hint="Change the folders to move it: lib/main.py."
      submitLabel="Rename"
      busy={rename.isPending}
      error={rename.isError ? describeError(rename.error) : null}
      onSubmit={(filename) => rename.mutate({ fileId: file.id, filename }, { onSuccess: onClose })}
      onClose={onClose}
    />
  )
}

function MoveFolderDialog({
  roomId,
  folder,
  onClose,
  onMoved,
}: {
  roomId: string
  folder: string
  onClose: () => void
  onMoved: (to: string) => void
}) {
  const move = useMoveFolder(roomId)
  const moved = (to: string) => {
    onMoved(to)
    onClose()
  }
  const submit = (value: string) => {
    const to = value.replace(/\/+$/, '')
    move.mutate(
      { from: folder, to },
      {
        onSuccess: () => moved(to),
        // A folder made here with no file yet exists only in this tab: it moves here alone.
        onError: (error) => {
          if (error instanceof ApiError && error.code === 'file_not_found') moved(to)
        },
      },
    )
  }
  return (
    <PathDialog
      title={`Move folder ${folder}`}
      id="move-folder"
      label="New path"
      initial={folder}
      hint="Everything in it moves; people editing its files keep editing."
      submitLabel="Move"
      busy={move.isPending}
      error={move.isError ? describeError(move.error) : null}
      onSubmit={submit}
      onClose={onClose}
    />
  )
}

function DeleteFileDialog({ roomId, file, onClose }: { roomId: string; file: FileEntry; onClose: () => void }) {
  const remove = useDeleteFile(roomId)
  return (
    <ConfirmDeleteDialog
      title={`Delete ${file.filename}?`}
      text="The file and its content are deleted for everyone in the room. Anyone editing it is disconnected."
      action={
        <>
          <FileIcon /> Delete file
        </>
      }
      mutation={remove}
      onConfirm={() => remove.mutate(file.id, { onSuccess: onClose })}
      onClose={onClose}
    />
  )
}

function DeleteFolderDialog({ roomId, folder, count, onClose }: { roomId: string; folder: string; count: number; onClose: () => void }) {
  const remove = useDeleteFolder(roomId)
  return (
    <ConfirmDeleteDialog
      title={`Delete folder ${folder}?`}
      text={
        count === 0
          ? 'The folder is empty.'
          : `Its ${count === 1 ? 'file is' : `${count} files are`} deleted for everyone in the room. Anyone editing them is disconnected.`
      }
      action={
        <>
          <TrashIcon /> Delete the folder
        </>
      }
      mutation={remove}
      onConfirm={() => (count === 0 ? onClose() : remove.mutate(folder, { onSuccess: onClose }))}
      onClose={onClose}
    />
  )
}

/** Asks before deleting what is shared with the whole room; the mutation's failure stays on screen. */
function ConfirmDeleteDialog({
  title,
  text,
  action,
  mutation,
  onConfirm,
  onClose,
}: {
  title: string
  text: string
  action: ReactNode
  mutation: { isPending: boolean; isError: boolean; error: unknown }
  onConfirm: () => void
  onClose: () => void
}) {
  return (
    <Dialog open title={title} onClose={onClose}>
      <p className="text-sm text-muted">{text}</p>
      {mutation.isError && <Alert>{describeError(mutation.error)}</Alert>}
      <div className="flex justify-end gap-2">
        <Button onClick={onClose} autoFocus>
          Cancel
        </Button>
        <Button variant="danger" busy={mutation.isPending} onClick={onConfirm}>
          {action}
        </Button>
      </div>
    </Dialog>
  )
}

function ArchiveReportDialog({ report, leftOut, onClose }: { report: ArchiveReport; leftOut: string[]; onClose: () => void }) {
  const refused = report.files.filter((file) => file.outcome === 'refused')
  const written = report.files.filter((file) => file.outcome === 'created' || file.outcome === 'replaced')
  return (
    <Dialog open title={report.written ? 'Project uploaded' : 'Project not uploaded'} onClose={onClose}>
      <div data-testid="archive-report" className="flex flex-col gap-3 text-sm">
        {report.written ? (
          <p className="text-muted">
            {written.length} {written.length === 1 ? 'file' : 'files'} written (
            {written.filter((file) => file.outcome === 'created').length} new,{' '}
            {written.filter((file) => file.outcome === 'replaced').length} replaced).
          </p>
        ) : (
          <Alert>{report.error?.message ?? 'Some files were refused; nothing was written.'}</Alert>
        )}
        {leftOut.length > 0 && (
          <p className="text-xs text-muted" title={leftOut.join('\n')}>
            Left out of the dropped folders: {leftOut.length} binary or generated {leftOut.length === 1 ? 'file' : 'files and folders'} (
            {leftOut.slice(0, 3).join(', ')}
            {leftOut.length > 3 ? ', …' : ''}).
          </p>
        )}
        {refused.length > 0 && (
          <ul className="max-h-64 overflow-y-auto text-xs">
            {refused.map((file) => (
              <li key={file.path} className="py-1">
                <code className="text-fg">{file.path}</code>: {file.message}
              </li>
            ))}
          </ul>
        )}
        <div className="flex justify-end">
          <Button variant="primary" onClick={onClose} autoFocus>
            OK
          </Button>
        </div>
      </div>
    </Dialog>
  )
}
