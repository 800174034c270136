// Monaco bound to the open file's Y.Text through y-monaco, with remote cursors labelled by name.

import { useEffect, useRef } from 'react'
import { MonacoBinding } from 'y-monaco'
import { monaco, monacoLanguage, uriExtension } from './monaco'
import type { FileSession } from '../collab/fileSession'
import { remoteCursorCss, type RemoteCursor } from '../collab/protocol'
import * as Y from 'yjs'
import { useUi } from '../state/ui'
import { useFollow } from '../state/follow'

interface CodeEditorProps {
  /** The live session, or null for a read-only snapshot (a public room the user is not in). */
  session: FileSession | null
  snapshot?: string
  fileId: string
  roomId: string
  language: string
  readOnly: boolean
  /** The session's first sync is done (always true for a snapshot). */
  synced: boolean
}

/** Cursor and scroll position per file, so switching tabs comes back to the same place. */
const viewStates = new Map<string, monaco.editor.ICodeEditorViewState>()

let focusRequested = false

/** The editor on screen and the file it shows: what the assistant reads and writes. */
let shown: { fileId: string; editor: monaco.editor.IStandaloneCodeEditor } | null = null

export interface EditorPlace {
  /** 1-based, as the assistant's API counts them. */
  cursor: { line: number; column: number }
  selection: { start: { line: number; column: number }; end: { line: number; column: number } } | null
  selectedText: string
}

/** Where the caret and the selection are in the shown editor of `fileId`, if it is shown. */
export function editorPlace(fileId: string): EditorPlace | null {
  if (shown?.fileId !== fileId) return null
  const { editor } = shown
  const position = editor.getPosition()
  const selection = editor.getSelection()
  const model = editor.getModel()
  if (!position || !model) return null
  const hasSelection = selection !== null && !selection.isEmpty()
  return {
    cursor: { line: position.lineNumber, column: position.column },
    selection: hasSelection
      ? {
          start: { line: selection.startLineNumber, column: selection.startColumn },
          end: { line: selection.endLineNumber, column: selection.endColumn },
        }
      : null,
    selectedText: hasSelection ? model.getValueInRange(selection) : '',
  }
}

/**
 * Puts `text` at the caret, or in place of the selection, as an edit of the shown editor: the
 * y-monaco binding turns it into a Yjs edit, so every collaborator sees it arrive like typing.
 * False when the file is not the one shown.
 */
export function editInShownEditor(fileId: string, text: string, where: 'cursor' | 'selection'): boolean {
  if (shown?.fileId !== fileId) return false
  const { editor } = shown
  const selection = editor.getSelection()
  const position = editor.getPosition()
  if (!selection || !position) return false
  const range =
    where === 'selection' ? selection : new monaco.Range(position.lineNumber, position.column, position.lineNumber, position.column)
  editor.pushUndoStop()
  editor.executeEdits('assistant', [{ range, text, forceMoveMarkers: true }])
  editor.pushUndoStop()
  editor.focus()
  return true
}

/** A place to show once the file is open: a search result. */
let pendingReveal: { fileId: string; line: number; column: number; length: number } | null = null

/** Selects `length` characters at `line`:`column` (1-based, UTF-16 columns) of `fileId` once it is shown. */
export function revealInEditor(fileId: string, line: number, column: number, length: number): void {
  pendingReveal = { fileId, line, column, length }
  applyReveal()
}

function applyReveal(): void {
  if (pendingReveal === null || shown?.fileId !== pendingReveal.fileId) return
  const { editor } = shown
  const model = editor.getModel()
  if (!model || model.getLineCount() < pendingReveal.line) return
  const { line, column, length } = pendingReveal
  pendingReveal = null
  const range = new monaco.Range(line, column, line, column + length)
  editor.setSelection(range)
  editor.revealRangeInCenter(range)
  editor.focus()
}

/**
 * The next file to open takes the focus: the user clicked it, pressed Enter on it, or just
 * created it. Other openings (arrow keys along the tabs, a reload) leave the focus where it is.
 */
export function requestEditorFocus(): void {
  focusRequested = true
}

function takeFocusRequest(): boolean {
  const requested = focusRequested
  focusRequested = false
  return requested || document.activeElement === null || document.activeElement === document.body
}

export function CodeEditor({ session, snapshot, fileId, roomId, language, readOnly, synced }: CodeEditorProps) {
  const containerRef = useRef<HTMLDivElement>(null)
  const editorRef = useRef<monaco.editor.IStandaloneCodeEditor | null>(null)
  const theme = useUi((state) => state.theme)

  // One editor per open file (the pane is keyed by file); files never share a model.
  useEffect(() => {
    const container = containerRef.current
    if (!container) return
    const editor = monaco.editor.create(container, {
      automaticLayout: true,
      fontFamily: "'JetBrains Mono', 'Fira Code', ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
      fontSize: 13.5,
      lineHeight: 21,
      minimap: { enabled: false },
      padding: { top: 14, bottom: 14 },
      scrollBeyondLastLine: false,
      smoothScrolling: true,
      renderLineHighlight: 'all',
      tabSize: 4,
      ariaLabel: 'Code editor',
      theme: document.documentElement.classList.contains('dark') ? 'codesync-dark' : 'codesync-light',
    })
    editorRef.current = editor
    shown = { fileId, editor }
    return () => {
      if (shown?.editor === editor) shown = null
      // Before dispose: a disposed editor has no view state to save.
      const view = editor.saveViewState()
      if (view) viewStates.set(fileId, view)
      editor.dispose()
      editorRef.current = null
    }
  }, [fileId])

  useEffect(() => {
    monaco.editor.setTheme(theme === 'dark' ? 'codesync-dark' : 'codesync-light')
  }, [theme])

  useEffect(() => {
    editorRef.current?.updateOptions({ readOnly, readOnlyMessage: { value: 'You can read this file but not change it.' } })
  }, [readOnly])

  useEffect(() => {
    const editor = editorRef.current
    if (!editor) return
    // Its own URI per file, so language services never mix two files into one program; the
    // extension follows the language (not the name), so a rename keeps model, binding and undo.
    const uri = monaco.Uri.from({ scheme: 'codesync', path: `/${roomId}/${fileId}/file${uriExtension(language)}` })
    monaco.editor.getModel(uri)?.dispose()
    const model = monaco.editor.createModel(session ? session.text.toString() : (snapshot ?? ''), monacoLanguage(language), uri)
    editor.setModel(model)
    const savedView = viewStates.get(fileId)
    if (savedView) editor.restoreViewState(savedView)

    let binding: MonacoBinding | null = null
    let style: HTMLStyleElement | null = null
    let stopCursors = () => {}
    if (session) {
      const awareness = session.provider.awareness
      binding = new MonacoBinding(session.text, model, new Set([editor]), awareness)
      style = document.createElement('style')
      style.dataset.remoteCursors = fileId
      document.head.appendChild(style)
      const renderCursors = () => {
        const cursors: RemoteCursor[] = []
        awareness.getStates().forEach((state, clientId) => {
          if (clientId === session.doc.clientID) return
          const user = (state as { user?: { name?: unknown; color?: unknown } }).user
          if (!user || typeof user.name !== 'string') return
          cursors.push({ clientId, name: user.name, colour: typeof user.color === 'string' ? user.color : '' })
        })
        // Awareness changes with every remote keystroke; the rules only when people or names do.
        const css = remoteCursorCss(cursors)
        if (style && style.textContent !== css) style.textContent = css
      }
      renderCursors()
      awareness.on('change', renderCursors)
      stopCursors = () => awareness.off('change', renderCursors)
    }

    return () => {
      const view = editor.saveViewState()
      if (view) viewStates.set(fileId, view)
      stopCursors()
      style?.remove()
      binding?.destroy()
      // Others should not see a cursor in a file this tab no longer shows.
      session?.provider.awareness.setLocalStateField('selection', null)
      editor.setModel(null)
      model.dispose()
    }
  }, [session, snapshot, fileId, roomId, language])

  // The caret goes to the editor once the file's real content is there, if the user asked for it.
  useEffect(() => {
    if (synced && takeFocusRequest()) editorRef.current?.focus()
    if (synced) applyReveal()
  }, [synced, session])

  // Following someone: their cursor stays in view as they move, until this person types or clicks.
  const following = useFollow((state) => state.following)
  useEffect(() => {
    const editor = editorRef.current
    if (!editor || !session || following === null) return
    const awareness = session.provider.awareness
    const showTheirCursor = () => {
      const model = editor.getModel()
      if (!model) return
      awareness.getStates().forEach((state) => {
        const { user, selection } = state as { user?: { id?: unknown }; selection?: { head?: unknown } | null }
        if (user?.id !== following.userId || !selection?.head) return
        const head = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(selection.head), session.doc)
        if (head === null || head.type !== session.text) return
        const position = model.getPositionAt(head.index)
        editor.revealPositionInCenterIfOutsideViewport(position)
      })
    }
    showTheirCursor()
    awareness.on('change', showTheirCursor)
    const stop = () => useFollow.getState().stop()
    const typed = editor.onKeyDown(stop)
    const clicked = editor.onMouseDown(stop)
    return () => {
      awareness.off('change', showTheirCursor)
      typed.dispose()
      clicked.dispose()
    }
  }, [session, following])

  return <div ref={containerRef} className="h-full w-full" data-testid="editor" data-file-id={fileId} />
}
