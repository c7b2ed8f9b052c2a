// What travels from a writer's log to a sink: COPY text rows, as the UTF-8 bytes the log holds
// and COPY reads (encoded once, when the turn is written), and the blocks that chain them.
import type { AuditBlock } from './audit-block.js'
import { rowSeq, rowTs } from './audit-copy-text.js'
import { UsageCells } from './usage-cells.js'

export interface AuditBatch {
  /**
   * COPY text rows, each ending in a newline, in seq order, as UTF-8. (A Uint8Array once it has
   * crossed to the SQLite writer thread: rowsText reads either.)
   */
  rows: Uint8Array
  events: number
  firstSeq: number
  lastSeq: number
  /** the earliest and latest event time (epoch ms): the months the rows land in */
  minTs: number
  maxTs: number
  /** the blocks whose rows start in this batch */
  blocks: AuditBlock[]
  /**
   * what the events add to the usage rollups, when the batch came from memory; absent when it
   * was read back from a log or split, and then counted from the rows (usageCellsOf)
   */
  cells?: UsageCells
}

/** one batch of several, in order (string concatenation: the rows are not copied per event) */
export function joinBatches (parts: readonly AuditBatch[]): AuditBatch {
  if (parts.length === 1) return parts[0]!
  const rows: Uint8Array[] = []
  let events = 0
  let minTs = Infinity
  let maxTs = -Infinity
  const blocks: AuditBlock[] = []
  let cells: UsageCells | undefined = new UsageCells()
  for (const part of parts) {
    if (part.cells === undefined) cells = undefined
    else cells?.merge(part.cells)
    rows.push(part.rows)
    events += part.events
    if (part.minTs < minTs) minTs = part.minTs
    if (part.maxTs > maxTs) maxTs = part.maxTs
    for (const block of part.blocks) blocks.push(block)
  }
  return { rows: Buffer.concat(rows), events, firstSeq: parts[0]!.firstSeq, lastSeq: parts[parts.length - 1]!.lastSeq, minTs, maxTs, blocks, ...(cells === undefined ? {} : { cells }) }
}

/** the rows one by one, for isolating an event a store refuses; blocks go with the first */
export function splitBatch (batch: AuditBatch): [AuditBatch, AuditBatch] {
  const rows = rowsOf(rowsText(batch))
  const half = rows.length >>> 1
  return [batchOfRows(rows.slice(0, half), batch.blocks), batchOfRows(rows.slice(half), [])]
}

/** the batch's rows as text */
export function rowsText (batch: AuditBatch): string {
  const bytes = batch.rows
  return (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('utf8')
}

export function rowsOf (text: string): string[] {
  const rows: string[] = []
  let start = 0
  for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
    rows.push(text.slice(start, end + 1))
    start = end + 1
  }
  return rows
}

export function batchOfRows (rows: readonly string[], blocks: AuditBlock[]): AuditBatch {
  let minTs = Infinity
  let maxTs = -Infinity
  for (const row of rows) {
    const ts = rowTs(row)
    if (ts < minTs) minTs = ts
    if (ts > maxTs) maxTs = ts
  }
  return {
    rows: Buffer.from(rows.join('')),
    events: rows.length,
    firstSeq: rows.length === 0 ? 0 : rowSeq(rows[0]!),
    lastSeq: rows.length === 0 ? 0 : rowSeq(rows[rows.length - 1]!),
    minTs,
    maxTs,
    blocks,
  }
}
