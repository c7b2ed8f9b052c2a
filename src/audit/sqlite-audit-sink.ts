// The embedded-mode audit sink: the audit_events table in the same SQLite file as the control
// store (schema.ts), one IMMEDIATE transaction of prepared INSERT OR IGNOREs per batch.
import type Database from 'better-sqlite3'
import { AUDIT_WRITER_CHECKPOINT_PAGES, openSqliteDatabase } from '../store/sqlite/schema.js'
import { isPaymentAmount, type ChainedAuditEvent } from './audit-event.js'
import { AuditContentError, type AuditSink } from './audit-sink.js'

// OR IGNORE: a replayed event hits the (ts, id) primary key and is skipped. It never turns into
// a delete, so the append-only triggers stay quiet.
const INSERT = `
  INSERT OR IGNORE INTO audit_events (
    ts, id, request_id, key_id, customer, team, service, environment, partner, credential_id,
    method, path, status, outcome, attempts, latency_ms, upstream_latency_ms, cost, bytes_in,
    bytes_out, payment_tx, payment_amount, writer_id, seq, prev_hash, hash
  ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

export class SqliteAuditSink implements AuditSink {
  readonly #db: Database.Database
  readonly #ownsDb: boolean
  readonly #writeBatch: Database.Transaction<(batch: readonly ChainedAuditEvent[]) => void>

  /** `db` must have the schema applied (openSqliteDatabase); `ownsDb`: close() closes it */
  constructor (db: Database.Database, options: { ownsDb?: boolean } = {}) {
    this.#db = db
    this.#ownsDb = options.ownsDb ?? false
    const insert = db.prepare(INSERT)
    this.#writeBatch = db.transaction((batch: readonly ChainedAuditEvent[]) => {
      for (const e of batch) {
        // what PostgreSQL's numeric(78,0) would refuse fails the batch here too, never a
        // row quietly: usage sums the column exactly, and the chain hashed the string as is
        if (e.payment_amount !== null && !isPaymentAmount(e.payment_amount)) {
          throw new AuditContentError(`audit event ${e.id}: payment_amount must be a decimal string of atomic units`)
        }
        insert.run(
          new Date(e.ts).toISOString(), e.id, e.request_id, e.key_id, e.customer, e.team, e.service,
          e.environment, e.partner, e.credential_id, e.method, e.path, e.status, e.outcome,
          e.attempts, e.latency_ms, e.upstream_latency_ms, e.cost, e.bytes_in, e.bytes_out,
          e.payment_tx, e.payment_amount, e.writer_id, e.seq, e.prev_hash, e.hash,
        )
      }
    })
  }

  // async so that a failure (SQLITE_BUSY past busy_timeout, a full disk) is a rejection, as the
  // interface promises; the transaction has rolled back by then, storing none of the batch.
  async write (batch: readonly ChainedAuditEvent[]): Promise<void> {
    if (batch.length === 0) return
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
