/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'
import tailwindcss from '@tailwindcss/vite'

// The gateway serves `dist/` (embedded in the binary, or from CODESYNC_WEB_DIR); in
// development Vite proxies the API and the WebSockets to a running `codesync run`.
const gateway = process.env.CODESYNC_DEV_GATEWAY ?? 'http://127.0.0.1:8080'

export default defineConfig({
  plugins: [react(), tailwindcss()],
  resolve: {
    // y-monaco imports `monaco-editor/esm/vs/editor/editor.api.js`, a path that
    // monaco-editor 0.5x only exposes without the `esm/vs/` prefix.
    alias: [{ find: /^monaco-editor\/esm\/vs\/(.*)$/, replacement: 'monaco-editor/$1' }],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 8192,
    sourcemap: false,
  },
  server: {
    proxy: {
      '/api': gateway,
      '/healthz': gateway,
      '/ws': { target: gateway.replace(/^http/, 'ws'), ws: true },
    },
  },
  test: {
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx'],
    environment: 'node',
  },
})
