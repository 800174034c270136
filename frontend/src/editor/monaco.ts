// Monaco, set up once: its web workers (bundled by Vite, served by the gateway: nothing from a
// CDN), the two CodeSync themes, and the server's language names mapped to Monaco's.

import * as monaco from 'monaco-editor'
import EditorWorker from 'monaco-editor/editor/editor.worker?worker'
import JsonWorker from 'monaco-editor/language/json/json.worker?worker'
import CssWorker from 'monaco-editor/language/css/css.worker?worker'
import HtmlWorker from 'monaco-editor/language/html/html.worker?worker'
import TsWorker from 'monaco-editor/language/typescript/ts.worker?worker'

self.MonacoEnvironment = {
  getWorker(_workerId: string, label: string): Worker {
    switch (label) {
      case 'json':
        return new JsonWorker()
      case 'css':
      case 'scss':
      case 'less':
        return new CssWorker()
      case 'html':
      case 'handlebars':
      case 'razor':
        return new HtmlWorker()
      case 'typescript':
      case 'javascript':
        return new TsWorker()
      default:
        return new EditorWorker()
    }
  },
}

monaco.editor.defineTheme('codesync-dark', {
  base: 'vs-dark',
  inherit: true,
  rules: [
    { token: 'comment', foreground: '6b7489', fontStyle: 'italic' },
    { token: 'keyword', foreground: 'c792ea' },
    { token: 'string', foreground: 'a5d6a7' },
    { token: 'number', foreground: 'f78c6c' },
    { token: 'type', foreground: '82aaff' },
  ],
  colors: {
    'editor.background': '#0f1117',
    'editor.foreground': '#d6deeb',
    'editor.lineHighlightBackground': '#181b24',
    'editorLineNumber.foreground': '#3c4255',
    'editorLineNumber.activeForeground': '#9aa3b8',
    'editor.selectionBackground': '#2f3b63',
    'editorCursor.foreground': '#8b9cff',
    'editorIndentGuide.background1': '#1f2330',
    'editorWidget.background': '#151823',
    'editorGutter.background': '#0f1117',
    'scrollbarSlider.background': '#2a2f3d80',
  },
})

monaco.editor.defineTheme('codesync-light', {
  base: 'vs',
  inherit: true,
  rules: [{ token: 'comment', foreground: '6a737d', fontStyle: 'italic' }],
  colors: {
    'editor.background': '#ffffff',
    'editor.lineHighlightBackground': '#f5f6fa',
    'editorLineNumber.foreground': '#b3b8c6',
    'editorCursor.foreground': '#4f46e5',
  },
})

// The server's names (services/rooms/src/language.rs) where Monaco's differ or Monaco lacks one.
const MONACO_LANGUAGE: Record<string, string> = {
  makefile: 'plaintext',
  cmake: 'plaintext',
  toml: 'ini',
}

export function monacoLanguage(serverLanguage: string): string {
  const mapped = MONACO_LANGUAGE[serverLanguage] ?? serverLanguage
  const known = monaco.languages.getLanguages().some((language) => language.id === mapped)
  return known ? mapped : 'plaintext'
}

// The extension a model's URI carries, which Monaco's TypeScript worker reads to tell
// JavaScript from TypeScript.
const EXTENSIONS: Record<string, string> = {
  javascript: '.js',
  typescript: '.ts',
  json: '.json',
  css: '.css',
  scss: '.scss',
  html: '.html',
  python: '.py',
}

export function uriExtension(serverLanguage: string): string {
  return EXTENSIONS[serverLanguage] ?? '.txt'
}

export { monaco }
