// A dropped folder goes up as the same zip archive a .zip upload is (one path on the server, one
// set of checks). Entries are stored, not compressed: text is small next to the upload limit, and
// no compression code ships to the browser.

const CRC_TABLE = Array.from({ length: 256 }, (_, index) => {
  let crc = index
  for (let bit = 0; bit < 8; bit += 1) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1
  return crc >>> 0
})

export function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

/** A zip archive of `files` (path and bytes), each entry stored. */
export function storedZip(files: { path: string; bytes: Uint8Array<ArrayBuffer> }[]): Blob {
  const encoder = new TextEncoder()
  const parts: BlobPart[] = []
  const central: BlobPart[] = []
  let offset = 0
  let centralSize = 0
  for (const { path, bytes } of files) {
    const name = encoder.encode(path)
    const crc = crc32(bytes)
    const local = new DataView(new ArrayBuffer(30))
    local.setUint32(0, 0x04034b50, true)
    local.setUint16(4, 20, true)
    local.setUint16(6, 0x0800, true) // names in UTF-8
    local.setUint32(14, crc, true)
    local.setUint32(18, bytes.length, true)
    local.setUint32(22, bytes.length, true)
    local.setUint16(26, name.length, true)
    const entry = new DataView(new ArrayBuffer(46))
    entry.setUint32(0, 0x02014b50, true)
    entry.setUint16(4, 20, true)
    entry.setUint16(6, 20, true)
    entry.setUint16(8, 0x0800, true)
    entry.setUint32(16, crc, true)
    entry.setUint32(20, bytes.length, true)
    entry.setUint32(24, bytes.length, true)
    entry.setUint16(28, name.length, true)
    entry.setUint32(42, offset, true)
    parts.push(local.buffer, name, bytes)
    central.push(entry.buffer, name)
    offset += 30 + name.length + bytes.length
    centralSize += 46 + name.length
  }
  const end = new DataView(new ArrayBuffer(22))
  end.setUint32(0, 0x06054b50, true)
  end.setUint16(8, files.length, true)
  end.setUint16(10, files.length, true)
  end.setUint32(12, centralSize, true)
  end.setUint32(16, offset, true)
  return new Blob([...parts, ...central, end.buffer], { type: 'application/zip' })
}

/** Folders a dropped project rarely means to bring along. */
const LEFT_OUT = new Set(['.git', 'node_modules', '__pycache__', '.venv', '.DS_Store'])

export interface DroppedFiles {
  files: { path: string; bytes: Uint8Array<ArrayBuffer> }[]
  /** Paths left out: binaries, and what `LEFT_OUT` names. */
  leftOut: string[]
}

/** Reads the files of dropped folders and files (their paths relative to what was dropped's parent). */
export async function readDropped(entries: FileSystemEntry[]): Promise<DroppedFiles> {
  const dropped: DroppedFiles = { files: [], leftOut: [] }
  const decoder = new TextDecoder('utf-8', { fatal: true })
  const visit = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
    if (LEFT_OUT.has(entry.name)) {
      dropped.leftOut.push(path)
      return
    }
    if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader()
      // readEntries answers in batches until an empty one.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject))
        if (batch.length === 0) break
        for (const child of batch) await visit(child, path)
      }
      return
    }
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject))
    const bytes = new Uint8Array(await file.arrayBuffer())
    try {
      if (decoder.decode(bytes).includes('\0')) throw new Error('binary')
      dropped.files.push({ path, bytes })
    } catch {
      dropped.leftOut.push(path)
    }
  }
  for (const entry of entries) await visit(entry, '')
  return dropped
}
