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
    for (;;) {
      const newline = data.indexOf(NEWLINE, start)
      if (newline !== -1) {
        if (newline > start) {
          const line = data.toString('utf8', start, newline + 1)
          // a full chunk stops before its next row, not before the block lines after its last
          // one: the caller may delete the file once those rows are stored
          if (rows.length >= maxEvents && !isBlockLine(line)) break
          if (!takeLine(line, writerId, encoder, rows, blocks)) damaged++
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

/** a line of a segment into `rows` or `blocks`; false when it is damaged */
function takeLine (line: string, writerId: string, encoder: CopyRowEncoder, rows: string[], blocks: AuditBlock[]): boolean {
  if (isBlockLine(line)) {
    const parsed = parseBlockLine(line, writerId)
    if (parsed === null) return false
    blocks.push(parsed)
    return true
  }
  if (line.charCodeAt(0) === OPEN_BRACE) {
    const event = legacySpillEvent(line)
    if (event === null) return false
    rows.push(encoder.chainedRow(event))
    return true
  }
  if (Number.isNaN(rowSeq(line))) return false
  rows.push(line)
  return true
}

/**
 * The whole lines of `text` (the bytes a writer wrote, read in one piece), as readLogChunk
 * would return them.
 */
export function parseLogText (text: string, writerId: string): Pick<LogChunk, 'rows' | 'blocks' | 'damaged'> {
  const rows: string[] = []
  const blocks: AuditBlock[] = []
  const encoder = new CopyRowEncoder()
  let damaged = 0
  let start = 0
  for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
    if (end > start && !takeLine(text.slice(start, end + 1), writerId, encoder, rows, blocks)) damaged++
    start = end + 1
  }
  if (start < text.length) damaged++
  return { rows, blocks, damaged }
}
