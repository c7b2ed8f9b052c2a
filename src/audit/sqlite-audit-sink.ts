// The embedded-mode audit sink: the audit_events and audit_blocks tables in the same SQLite file
// as the control store (schema.ts), one IMMEDIATE transaction of prepared INSERT OR IGNOREs per
// batch, which also adds the events it stored to the hourly usage rollup. The rows arrive as
// COPY text (audit-copy-text.ts) and are parsed back into values here, on the writer thread, not
// on the event loop that recorded them.
import type Database from 'better-sqlite3'
import { AUDIT_WRITER_CHECKPOINT_PAGES, openSqliteDatabase } from '../store/sqlite/schema.js'
import { UsageCells } from './usage-cells.js'
import { rowsOf, rowsText, type AuditBatch } from './audit-batch.js'
import { AUDIT_COLUMNS, eventOfValues, parseCopyRow } from './audit-copy-text.js'
import { isPaymentAmount } from './audit-event.js'
import { AuditContentError, type AuditSink } from './audit-sink.js'

// OR IGNORE: a replayed event hits the (ts, id) primary key and is skipped, a replayed block
// (writer_id, first_seq). It never turns into a delete, so the append-only triggers stay quiet.
const INSERT_EVENT = `INSERT OR IGNORE INTO audit_events (${AUDIT_COLUMNS.join(', ')}) VALUES (${AUDIT_COLUMNS.map(() => '?').join(', ')})`
const INSERT_BLOCK = 'INSERT OR IGNORE INTO audit_blocks (writer_id, first_seq, last_seq, prev_hash, hash) VALUES (?, ?, ?, ?, ?)'
const PAYMENT_AMOUNT = AUDIT_COLUMNS.indexOf('payment_amount')
const ADD_USAGE = `INSERT INTO audit_usage_hourly (hour, key_id, customer, partner, outcome, requests, retried,
    server_errors, cost, bytes_in, bytes_out, paid, paid_amount)
  VALUES (@hour, @key_id, @customer, @partner, @outcome, @requests, @retried, @server_errors, @cost, @bytes_in, @bytes_out, @paid, @paid_amount)
  ON CONFLICT DO UPDATE SET
    requests = requests + excluded.requests, retried = retried + excluded.retried,
    server_errors = server_errors + excluded.server_errors, cost = cost + excluded.cost,
    bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out,
    paid = paid + excluded.paid, paid_amount = relaykey_decimal_add(paid_amount, excluded.paid_amount)`

export class SqliteAuditSink implements AuditSink {
  readonly #db: Database.Database
  readonly #ownsDb: boolean
  readonly #writeBatch: Database.Transaction<(batch: AuditBatch) => void>

  /** `db` must have the schema applied (openSqliteDatabase); `ownsDb`: close() closes it */
  constructor (db: Database.Database, options: { ownsDb?: boolean } = {}) {
    this.#db = db
    this.#ownsDb = options.ownsDb ?? false
    db.function('relaykey_decimal_add', { deterministic: true }, (a: unknown, b: unknown) => (BigInt(a as string) + BigInt(b as string)).toString())
    const insertEvent = db.prepare(INSERT_EVENT)
    const insertBlock = db.prepare(INSERT_BLOCK)
    const addUsage = db.prepare(ADD_USAGE)
    this.#writeBatch = db.transaction((batch: AuditBatch) => {
      // only what this transaction stores: a replayed event is skipped, and adds nothing
      const cells = new UsageCells()
      for (const row of rowsOf(rowsText(batch))) {
        let values
        try {
          values = parseCopyRow(row)
        } catch (err) {
          throw new AuditContentError(`a damaged audit row: ${(err as Error).message}`)
        }
        // what PostgreSQL's numeric(78,0) would refuse fails the batch here too, never a
        // row quietly: usage sums the column exactly
        const amount = values[PAYMENT_AMOUNT]!
        if (amount !== null && !isPaymentAmount(amount)) {
          throw new AuditContentError(`audit event ${values[1]}: payment_amount must be a decimal string of atomic units`)
        }
        if (insertEvent.run(values).changes === 1) cells.add(eventOfValues(values))
      }
      for (const c of cells.values()) {
        addUsage.run({ ...c, hour: new Date(c.hour).toISOString(), paid_amount: c.paid_amount.toString() })
      }
      for (const b of batch.blocks) insertBlock.run(b.writer_id, b.first_seq, b.last_seq, b.prev_hash, b.hash)
    })
  }

  // async so that a failure (SQLITE_BUSY past busy_timeout, a full disk) is a rejection, as the
  // interface promises; the transaction has rolled back by then, storing none of the batch.
  async write (batch: AuditBatch): Promise<void> {
    if (batch.events === 0 && batch.blocks.length === 0) return
    // IMMEDIATE: take the write lock up front (waiting busy_timeout for other processes)
    // rather than failing to upgrade a read lock halfway through
    try {
      this.#writeBatch.immediate(batch)
    } catch (err) {
      if (err instanceof AuditContentError) throw err
      if (isContentError(err)) throw new AuditContentError(`SQLite refused an audit event: ${(err as Error).message}`, { cause: err })
      throw err
    }
  }

  async close (): Promise<void> {
    if (this.#ownsDb) this.#db.close()
  }
}

/**
 * Refused for what a row holds: a value this sink or SQLite will not store (a malformed
 * payment_amount, a string past SQLite's length limit, a type mismatch, a constraint). A busy
 * lock, a full disk or a closed file are the store's state instead.
 */
function isContentError (err: unknown): boolean {
  // RangeError: a ts toISOString cannot format. Not TypeError: better-sqlite3 throws one for a
  // closed database, which is the store's state
  if (err instanceof RangeError) return true
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && CONTENT_CODES.test(code)
}

const CONTENT_CODES = /^SQLITE_(CONSTRAINT|TOOBIG|MISMATCH)/

/**
 * Opens the embedded file (RELAYKEY_DATA_DIR/relaykey.db) on a connection of the sink's own,
 * the one that checkpoints the file (schema.ts, AUDIT_WRITER_CHECKPOINT_PAGES).
 */
export function openSqliteAuditSink (file: string): SqliteAuditSink {
  return new SqliteAuditSink(openSqliteDatabase(file, { checkpointPages: AUDIT_WRITER_CHECKPOINT_PAGES }), { ownsDb: true })
}
