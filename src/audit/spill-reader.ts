// Reads a spill file back in chunks of whole NDJSON lines, from a byte offset, so a replay can
// stop after any chunk and go on later without holding the file (up to the spill limit) in memory.
import { open } from 'node:fs/promises'
import type { ChainedAuditEvent } from './audit-event.js'

const BLOCK = 256 * 1024
const NEWLINE = 0x0a

export interface SpillChunk {
  events: ChainedAuditEvent[]
  /** byte offset just past the last line consumed: where the next chunk starts */
  nextOffset: number
  /** nothing is left after nextOffset */
  eof: boolean
  /**
   * lines that did not parse. A crash in the middle of an append leaves a torn last line; the
   * events in it were never acknowledged as spilled, and the count lets the caller alarm.
   */
  damaged: number
}

export async function readSpillChunk (path: string, offset: number, maxEvents: number): Promise<SpillChunk> {
  const file = await open(path, 'r')
  try {
    const size = (await file.stat()).size
    const events: ChainedAuditEvent[] = []
    const block = Buffer.allocUnsafe(BLOCK)
    let damaged = 0
    // `data` holds bytes from absolute offset `dataAt`; `start` is the first unconsumed one
    let data = Buffer.alloc(0)
    let dataAt = offset
    let start = 0
    let readAt = offset
    while (events.length < maxEvents) {
      const newline = data.indexOf(NEWLINE, start)
      if (newline !== -1) {
        if (newline > start) {
          const event = parseLine(data.toString('utf8', start, newline))
          if (event === null) damaged++
          else events.push(event)
        }
        start = newline + 1
        continue
      }
      if (readAt >= size) {
        // a last line without its newline is the torn tail of an interrupted append
        if (start < data.length) {
          damaged++
          start = data.length
        }
        break
      }
      const { bytesRead } = await file.read(block, 0, BLOCK, readAt)
      if (bytesRead === 0) break
      readAt += bytesRead
      // keep the unconsumed tail of the previous block (a line split across blocks)
      const rest = data.subarray(start)
      dataAt += start
      data = Buffer.concat([rest, block.subarray(0, bytesRead)])
      start = 0
    }
    const nextOffset = dataAt + start
    return { events, nextOffset, eof: nextOffset >= size, damaged }
  } finally {
    await file.close()
  }
}

function parseLine (line: string): ChainedAuditEvent | null {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  const event = value as Partial<ChainedAuditEvent>
  if (typeof event.id !== 'string' || typeof event.writer_id !== 'string' || typeof event.seq !== 'number' ||
    typeof event.hash !== 'string') return null
  // files spilled before payment_amount existed lack it; those events were chained without it,
  // which is what null means to the chain (audit-chain.ts)
  if (event.payment_amount === undefined) event.payment_amount = null
  return event as ChainedAuditEvent
}
