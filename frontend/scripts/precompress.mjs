// Writes brotli and gzip copies of the build's text files (dist/**/*.{js,css,html,svg,json}),
// so the gateway serves Monaco's megabytes compressed without compressing at run time.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'

const root = new URL('../dist/', import.meta.url).pathname
const compressible = /\.(js|mjs|css|html|svg|json|map|txt|ttf)$/
const minimumBytes = 1024

function* files(directory) {
  for (const name of readdirSync(directory)) {
    const path = join(directory, name)
    if (statSync(path).isDirectory()) yield* files(path)
    else yield path
  }
}

let before = 0
let after = 0
for (const path of [...files(root)]) {
  if (!compressible.test(path)) continue
  const content = readFileSync(path)
  if (content.length < minimumBytes) continue
  const brotli = brotliCompressSync(content, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 9, [constants.BROTLI_PARAM_SIZE_HINT]: content.length },
  })
  const gzip = gzipSync(content, { level: 9 })
  // A copy that saves little is not worth serving.
  if (brotli.length < content.length * 0.9) writeFileSync(`${path}.br`, brotli)
  if (gzip.length < content.length * 0.9) writeFileSync(`${path}.gz`, gzip)
  before += content.length
  after += brotli.length
}
console.log(`precompressed ${(before / 1048576).toFixed(1)} MiB of text to ${(after / 1048576).toFixed(1)} MiB (brotli)`)
