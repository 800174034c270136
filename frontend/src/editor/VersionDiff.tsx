// Monaco's diff editor, read-only: a version of a file on the left, what it is compared with on
// the right (the live file, or another version), side by side with the changes marked.

import { useEffect, useRef } from 'react'
import { monaco, monacoLanguage } from './monaco'
import { useUi } from '../state/ui'

let nextModel = 0

export function VersionDiff({ original, modified, language }: { original: string; modified: string; language: string }) {
  const containerRef = useRef<HTMLDivElement>(null)
  const editorRef = useRef<monaco.editor.IStandaloneDiffEditor | null>(null)
  const modelsRef = useRef<{ original: monaco.editor.ITextModel; modified: monaco.editor.ITextModel } | null>(null)
  const theme = useUi((state) => state.theme)

  useEffect(() => {
    const container = containerRef.current
    if (!container) return
    const editor = monaco.editor.createDiffEditor(container, {
      automaticLayout: true,
      readOnly: true,
      originalEditable: false,
      renderSideBySide: true,
      minimap: { enabled: false },
      scrollBeyondLastLine: false,
      fontSize: 13,
      ariaLabel: 'Differences between versions',
      theme: document.documentElement.classList.contains('dark') ? 'codesync-dark' : 'codesync-light',
    })
    // Models of their own (a scheme no editor of a live file uses), disposed with the view.
    nextModel += 1
    const uri = (side: string) => monaco.Uri.from({ scheme: 'codesync-history', path: `/${nextModel}/${side}` })
    const models = {
      original: monaco.editor.createModel('', monacoLanguage(language), uri('original')),
      modified: monaco.editor.createModel('', monacoLanguage(language), uri('modified')),
    }
    editor.setModel(models)
    editorRef.current = editor
    modelsRef.current = models
    return () => {
      editor.dispose()
      models.original.dispose()
      models.modified.dispose()
      editorRef.current = null
      modelsRef.current = null
    }
  }, [language])

  useEffect(() => {
    const models = modelsRef.current
    if (!models) return
    if (models.original.getValue() !== original) models.original.setValue(original)
    if (models.modified.getValue() !== modified) models.modified.setValue(modified)
  }, [original, modified, language])

  useEffect(() => {
    monaco.editor.setTheme(theme === 'dark' ? 'codesync-dark' : 'codesync-light')
  }, [theme])

  return <div ref={containerRef} className="h-full w-full" data-testid="version-diff" />
}
