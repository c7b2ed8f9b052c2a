// Reads an audit log segment (or an older release's spill file) back in chunks of whole lines,
// from a byte offset, so shipping from disk can stop after any chunk and go on later without
// holding the file in memory. Rows come back as written; an older release's whole-event lines
// come back as the rows they make.
import { open } from 'node:fs/promises'
import { isBlockLine, parseBlockLine, type AuditBlock } from './audit-block.js'
import { CopyRowEncoder, rowSeq } from './audit-copy-text.js'
import type { ChainedAuditEvent } from './audit-event.js'

const BLOCK = 256 * 1024
const NEWLINE = 0x0a

export interface LogChunk {
  /** COPY text rows, newline included, in the order written */
  rows: string[]
  /** the blocks written after their rows */
  blocks: AuditBlock[]
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
    const rows: string[] = []
    const blocks: AuditBlock[] = []
    const encoder = new CopyRowEncoder()
    const block = Buffer.allocUnsafe(BLOCK)
    let damaged = 0
    // `data` holds bytes from absolute offset `dataAt`; `start` is the first unconsumed one
    let data = Buffer.alloc(0)
    let dataAt = offset
    let start = 0
    let readAt = offset
    while (rows.length < maxEvents) {
      const newline = data.indexOf(NEWLINE, start)
      if (newline !== -1) {
        if (newline > start) {
          const line = data.toString('utf8', start, newline + 1)
          if (isBlockLine(line)) {
            const parsed = parseBlockLine(line, writerId)
            if (parsed === null) damaged++
            else blocks.push(parsed)
          } else if (line.charCodeAt(0) === OPEN_BRACE) {
            const event = legacySpillEvent(line)
            if (event === null) damaged++
            else rows.push(encoder.chainedRow(event))
          } else if (Number.isNaN(rowSeq(line))) {
            damaged++
          } else {
            rows.push(line)
          }
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
    return { rows, blocks, nextOffset, eof: nextOffset >= size, damaged }
  } finally {
    await file.close()
  }
}

const OPEN_BRACE = 0x7b

/** a line of an older release's spill file: a whole ChainedAuditEvent as JSON */
function legacySpillEvent (line: string): ChainedAuditEvent | null {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  const event = value as Partial<ChainedAuditEvent>
  if (typeof event.id !== 'string' || typeof event.writer_id !== 'string' || typeof event.seq !== 'number' ||
    typeof event.hash !== 'string' || typeof event.ts !== 'number') return null
  // files spilled before payment_amount existed lack it; those events were chained without it,
  // which is what null means to the chain (audit-chain.ts)
  if (event.payment_amount === undefined) event.payment_amount = null
  return event as ChainedAuditEvent
}
