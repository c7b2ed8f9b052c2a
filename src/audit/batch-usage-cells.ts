// The usage cells of a batch of audit events: the ones it brought along from memory, or, for a
// batch read back from a log or split, counted from its rows (usage-cells.ts explains the cells).
import { rowsOf, rowsText, type AuditBatch } from './audit-batch.js'
import { eventOfRow } from './audit-copy-text.js'
import { AuditContentError } from './audit-sink.js'
import { UsageCells } from './usage-cells.js'

/** the cells of a batch that came without them (read back from a log, or split): from its rows */
export function usageCellsOfRows (batch: AuditBatch): UsageCells {
  const cells = new UsageCells()
  for (const row of rowsOf(rowsText(batch))) {
    try {
      const event = eventOfRow(row)
      if (!Number.isFinite(event.ts)) throw new Error(`ts is not a time`)
      cells.add(event)
    } catch (err) {
      // the batch is split until this row is found and quarantined
      throw new AuditContentError(`a damaged audit row: ${(err as Error).message}`)
    }
  }
  return cells
}

/** the batch's cells, brought along or counted now */
export function usageCellsOf (batch: AuditBatch): UsageCells {
  return batch.cells ?? usageCellsOfRows(batch)
}
