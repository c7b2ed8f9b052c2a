// Reads an audit log segment (or an older release's spill file) back in chunks of whole lines,
// from a byte offset, so shipping from disk can stop after any chunk and go on later without
// holding the file in memory.
import { open } from 'node:fs/promises'
import type { ChainedAuditEvent } from './audit-event.js'
import { parseLogLine } from './log-line.js'

const BLOCK = 256 * 1024
const NEWLINE = 0x0a

export interface LogChunk {
  events: ChainedAuditEvent[]
  /** byte offset just past the last line consumed: where the next chunk starts */
  nextOffset: number
  /** nothing is left after nextOffset */
  eof: boolean
  /**
   * lines that did not parse. A machine that lost power in the middle of an append leaves a
   * torn last line; the count lets the caller alarm.
   */
  damaged: number
}

/** `writerId` names the events of a log segment (its lines do not repeat it) */
export async function readLogChunk (path: string, writerId: string, offset: number, maxEvents: number, end = Infinity): Promise<LogChunk> {
  const file = await open(path, 'r')
  try {
    // `end`: the bytes the writer has acknowledged, for a segment still being appended to
    const size = Math.min(end, (await file.stat()).size)
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
          const event = parseLogLine(data.toString('utf8', start, newline), writerId)
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
      const { bytesRead } = await file.read(block, 0, Math.min(BLOCK, size - readAt), readAt)
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
