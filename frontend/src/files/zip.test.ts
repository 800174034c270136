import { describe, expect, it } from 'vitest'
import { crc32, storedZip } from './zip'

describe('storedZip', () => {
  it('computes the CRC-32 of the zip format', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926)
  })

  it('writes entries a zip reader finds through the central directory', async () => {
    const text = new TextEncoder().encode('print("é")\n')
    const blob = storedZip([{ path: 'src/app/main.py', bytes: text }])
    const bytes = new Uint8Array(await blob.arrayBuffer())
    const view = new DataView(bytes.buffer)
    const end = bytes.length - 22
    expect(view.getUint32(end, true)).toBe(0x06054b50)
    const centralAt = view.getUint32(end + 16, true)
    expect(view.getUint32(centralAt, true)).toBe(0x02014b50)
    const nameLength = view.getUint16(centralAt + 28, true)
    expect(new TextDecoder().decode(bytes.subarray(centralAt + 46, centralAt + 46 + nameLength))).toBe('src/app/main.py')
    const dataAt = 30 + nameLength
    expect(new TextDecoder().decode(bytes.subarray(dataAt, dataAt + text.length))).toBe('print("é")\n')
  })
})
