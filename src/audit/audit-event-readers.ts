// Reads stored audit events back as ChainedAuditEvents, in chain order (writer_id, seq), and the
// blocks that chain them: what `relaykey audit verify` walks, and what the sink contract test
// compares against.
import type Database from 'better-sqlite3'
import type postgres from 'postgres'
import type { AuditBlock } from './audit-block.js'
import type { ChainedAuditEvent } from './audit-event.js'
import { AUDIT_COLUMNS } from './audit-copy-text.js'

// Added by migration 0005 / SQLite schema step 5. verify never migrates, so it may meet a trail
// that predates the column (a newer binary run first): the column then reads as NULL, which is
// exactly what those rows were hashed with.
const PAYMENT_AMOUNT = 'payment_amount'

// ts and id break ties so that a duplicated seq (a forged row) still reads back in a stable order
function selectInChainOrder (hasPaymentAmount: boolean): string {
  const columns = AUDIT_COLUMNS.map((c) => (c === PAYMENT_AMOUNT && !hasPaymentAmount ? `NULL AS ${c}` : c))
  return `SELECT ${columns.join(', ')} FROM audit_events ORDER BY writer_id, seq, ts, id`
}

/**
 * the row as postgres.js returns it: bigint columns arrive as strings, timestamptz as Date;
 * numeric (payment_amount) as the decimal string it was written as, which is what the chain wants
 */
type PostgresRow = Omit<ChainedAuditEvent, 'ts' | 'cost' | 'bytes_in' | 'bytes_out' | 'seq'> & {
  ts: Date
  cost: string
  bytes_in: string
  bytes_out: string
  seq: string
}

/** Streams every row through a cursor, `rowsPerFetch` at a time, so memory stays flat. */
export async function * readPostgresAuditEvents (sql: postgres.Sql, rowsPerFetch = 2000): AsyncGenerator<ChainedAuditEvent> {
  const [{ present }] = await sql<[{ present: boolean }]>`
    SELECT EXISTS (SELECT 1 FROM pg_attribute
                    WHERE attrelid = to_regclass('audit_events') AND attname = ${PAYMENT_AMOUNT} AND NOT attisdropped) AS present`
  for await (const rows of sql.unsafe<PostgresRow[]>(selectInChainOrder(present)).cursor(rowsPerFetch)) {
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
  const present = db.prepare('SELECT 1 FROM pragma_table_info(\'audit_events\') WHERE name = ?').get(PAYMENT_AMOUNT) !== undefined
  for (const row of db.prepare(selectInChainOrder(present)).iterate() as IterableIterator<SqliteRow>) {
    yield { ...row, ts: Date.parse(row.ts) }
  }
}

const SELECT_BLOCKS = 'SELECT writer_id, first_seq, last_seq, prev_hash, hash FROM audit_blocks ORDER BY writer_id, first_seq'

/** every block; none when the table predates this release (verify never migrates) */
export async function readPostgresAuditBlocks (sql: postgres.Sql): Promise<AuditBlock[]> {
  const [{ present }] = await sql<[{ present: boolean }]>`SELECT to_regclass('audit_blocks') IS NOT NULL AS present`
  if (!present) return []
  const rows = await sql.unsafe<Array<Omit<AuditBlock, 'first_seq' | 'last_seq'> & { first_seq: string; last_seq: string }>>(SELECT_BLOCKS)
  return rows.map((b) => ({ ...b, first_seq: Number(b.first_seq), last_seq: Number(b.last_seq) }))
}

export function readSqliteAuditBlocks (db: Database.Database): AuditBlock[] {
  const present = db.prepare('SELECT 1 FROM sqlite_master WHERE type = \'table\' AND name = \'audit_blocks\'').get() !== undefined
  return present ? db.prepare(SELECT_BLOCKS).all() as AuditBlock[] : []
}
