// Reads stored audit events back as ChainedAuditEvents, in chain order (writer_id, seq): what
// `relaykey audit verify` walks, and what the sink contract test compares against.
import type Database from 'better-sqlite3'
import type postgres from 'postgres'
import type { ChainedAuditEvent } from './audit-event.js'
import { AUDIT_COLUMNS } from './audit-copy-text.js'

// ts and id break ties so that a duplicated seq (a forged row) still reads back in a stable order
const SELECT_IN_CHAIN_ORDER = `SELECT ${AUDIT_COLUMNS.join(', ')} FROM audit_events ORDER BY writer_id, seq, ts, id`

/** the row as postgres.js returns it: bigint columns arrive as strings, timestamptz as Date */
type PostgresRow = Omit<ChainedAuditEvent, 'ts' | 'cost' | 'bytes_in' | 'bytes_out' | 'seq'> & {
  ts: Date
  cost: string
  bytes_in: string
  bytes_out: string
  seq: string
}

/** Streams every row through a cursor, `rowsPerFetch` at a time, so memory stays flat. */
export async function * readPostgresAuditEvents (sql: postgres.Sql, rowsPerFetch = 2000): AsyncGenerator<ChainedAuditEvent> {
  for await (const rows of sql.unsafe<PostgresRow[]>(SELECT_IN_CHAIN_ORDER).cursor(rowsPerFetch)) {
    for (const row of rows) {
      yield {
        ...row,
        ts: row.ts.getTime(),
        cost: Number(row.cost),
        bytes_in: Number(row.bytes_in),
        bytes_out: Number(row.bytes_out),
        seq: Number(row.seq),
      }
    }
  }
}

type SqliteRow = Omit<ChainedAuditEvent, 'ts'> & { ts: string }

/** Iterates every row of the embedded file's audit_events. */
export async function * readSqliteAuditEvents (db: Database.Database): AsyncGenerator<ChainedAuditEvent> {
  for (const row of db.prepare(SELECT_IN_CHAIN_ORDER).iterate() as IterableIterator<SqliteRow>) {
    yield { ...row, ts: Date.parse(row.ts) }
  }
}
