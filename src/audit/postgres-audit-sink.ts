// The PostgreSQL audit sink. A batch's rows arrive in COPY's text format, encoded once when each
// event was recorded (audit-copy-text.ts), and are sent as they are; its blocks (audit-block.ts)
// go by COPY too. The batch lands whole or not at all, one transaction each, by one of two paths:
//
//   staging (as designed): COPY into a per-session temporary table, then one
//     INSERT INTO audit_events SELECT … ON CONFLICT DO NOTHING, which skips events already stored;
//     the same statement adds the events it did store to the hourly usage rollup
//   direct (fast path):    COPY straight into audit_events, and the batch's cells into the
//     rollup (one prepared upsert of a JSON parameter). A single event already stored fails the
//     whole COPY on the primary key; the batch is then written again by the staging path.
//
// The direct path touches no temporary table. A transaction that does pays for it at commit:
// PostgreSQL then empties every ON COMMIT DELETE ROWS table of the session (a file truncation
// each), which was a tenth of the server's CPU per batch when the cells went through one.
//
// Almost every batch is new, so the direct path carries them: no temporary rows, no second pass,
// no speculative insertion — about 9 instead of 13 µs of server CPU per event, ~90k instead of
// ~55k events/s on two cores (bench/audit-write.ts). Replays (the log after an outage) come in
// runs, so after a conflict the sink stays on the staging path until a batch needs no skipping.
import { finished } from 'node:stream/promises'
import { setImmediate as nextTurn } from 'node:timers/promises'
import postgres from 'postgres'
import type { AuditBatch } from './audit-batch.js'
import type { AuditBlock } from './audit-block.js'
import { AuditContentError, type AuditSink } from './audit-sink.js'
import { AUDIT_COLUMNS } from './audit-copy-text.js'
import { USAGE_CELL_COLUMNS } from './usage-cells.js'
import { usageCellsOf } from './batch-usage-cells.js'
import { clientOptions } from '../store/postgres/client-options.js'
import { postgresSocket } from '../store/postgres/postgres-socket.js'

const COLUMN_LIST = AUDIT_COLUMNS.join(', ')
// ON COMMIT DELETE ROWS empties it at the end of every batch's transaction without a statement.
const CREATE_STAGING = 'CREATE TEMP TABLE IF NOT EXISTS audit_staging (LIKE audit_events) ON COMMIT DELETE ROWS'
const COPY_STAGING = `COPY audit_staging (${COLUMN_LIST}) FROM STDIN`
// what a cell adds to the hourly row it lands in (null key_id or customer is '' there: a
// primary key column cannot be null)
const ADD_TO_USAGE = `ON CONFLICT ON CONSTRAINT audit_usage_hourly_pkey DO UPDATE SET
    requests = u.requests + excluded.requests, retried = u.retried + excluded.retried,
    server_errors = u.server_errors + excluded.server_errors, cost = u.cost + excluded.cost,
    bytes_in = u.bytes_in + excluded.bytes_in, bytes_out = u.bytes_out + excluded.bytes_out,
    paid = u.paid + excluded.paid, paid_amount = u.paid_amount + excluded.paid_amount`
const USAGE_LIST = USAGE_CELL_COLUMNS.join(', ')

/**
 * The hourly usage rows (USAGE_CELL_COLUMNS) of the events in `source`, a table or CTE with
 * audit_events' columns, in key order (the order upserts lock them in). migrations/0008 fills the
 * table from audit_events with the same sums.
 */
export function usageRollupOf (source: string): string {
  return `SELECT date_trunc('hour', ts, 'UTC'), coalesce(key_id, ''), coalesce(customer, ''), partner, outcome,
           count(*), sum(greatest(attempts - 1, 0)), count(*) FILTER (WHERE status >= 500), sum(cost),
           sum(bytes_in), sum(bytes_out), count(payment_tx), coalesce(sum(payment_amount) FILTER (WHERE payment_tx IS NOT NULL), 0)
      FROM ${source} GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`
}
// RETURNING hands on only the rows stored: a replayed event adds nothing to usage. The answer is
// how many were stored.
const MOVE_STAGED = `WITH stored AS (
    INSERT INTO audit_events (${COLUMN_LIST}) SELECT ${COLUMN_LIST} FROM audit_staging ON CONFLICT DO NOTHING
    RETURNING ts, key_id, customer, partner, outcome, status, attempts, cost, bytes_in, bytes_out, payment_tx, payment_amount
  ), usage AS (
    INSERT INTO audit_usage_hourly AS u (${USAGE_LIST}) ${usageRollupOf('stored')}
    ${ADD_TO_USAGE}
  )
  SELECT count(*)::int AS stored FROM stored`
// the direct path's cells (usage-cells.ts): one per row of the hourly table already, as one
// JSON text parameter of a statement the session prepares once (typed text: postgres.js would
// quote a string it is told is json once more). Both upserts take their rows' locks
// in key order: two workers' batches sharing cells in different orders would otherwise deadlock
// (40P01), and a deadlock marks the sink down
const ADD_CELLS = `INSERT INTO audit_usage_hourly AS u (${USAGE_LIST})
  SELECT ${USAGE_LIST} FROM json_to_recordset($1::text::json) AS c(hour timestamptz, key_id text, customer text,
    partner text, outcome text, requests bigint, retried bigint, server_errors bigint, cost bigint,
    bytes_in bigint, bytes_out bigint, paid bigint, paid_amount numeric)
  ORDER BY hour, key_id, customer, partner, outcome ${ADD_TO_USAGE}`
const COPY_DIRECT = `COPY audit_events (${COLUMN_LIST}) FROM STDIN`
// Blocks travel by COPY too: at low traffic a block is one event, so they are as many as the rows
const BLOCK_COLUMNS = 'writer_id, first_seq, last_seq, prev_hash, hash'
const CREATE_BLOCK_STAGING = 'CREATE TEMP TABLE IF NOT EXISTS audit_blocks_staging (LIKE audit_blocks) ON COMMIT DELETE ROWS'
const CREATE_TEMP_TABLES = [CREATE_STAGING, CREATE_BLOCK_STAGING]
const COPY_BLOCKS_DIRECT = `COPY audit_blocks (${BLOCK_COLUMNS}) FROM STDIN`
const COPY_BLOCKS_STAGING = `COPY audit_blocks_staging (${BLOCK_COLUMNS}) FROM STDIN`
const MOVE_STAGED_BLOCKS = `INSERT INTO audit_blocks (${BLOCK_COLUMNS}) SELECT ${BLOCK_COLUMNS} FROM audit_blocks_staging ON CONFLICT DO NOTHING`

/** partitions are ensured this far ahead of the current month, and re-checked this often */
const MONTHS_AHEAD = 3
const MAX_MONTHS_AHEAD = 24
const ENSURE_EVERY_MS = 24 * 60 * 60 * 1000
/** how far back a batch's events get partitions made for them: two years (see #ensurePartitions) */
const OLDEST_PARTITION_MS = 2 * 366 * 24 * 60 * 60 * 1000

export interface PostgresAuditSinkOptions {
  /** the clock deciding the current month and the daily partition check; tests move it */
  now?: () => number
  /** false: every batch takes the staging path (the benchmark's baseline); default true */
  directCopy?: boolean
  /**
   * Opens a fresh client. With it the sink replaces its client after a failed or stuck write:
   * postgres.js 3.4.9 can leave a client hung for good after a connection error inside a
   * transaction (porsager/postgres#1208), which would stall the audit trail until a restart.
   */
  reconnect?: () => postgres.Sql
  /** a write not settled after this long is abandoned and its client replaced (default 10 s) */
  writeDeadlineMs?: number
}

export class PostgresAuditSink implements AuditSink {
  #sql: postgres.Sql
  readonly #reconnect: (() => postgres.Sql) | null
  readonly #deadlineMs: number
  readonly #now: () => number
  // the temp table lives as long as the session; a new session (reconnect) needs it again
  #stagingReady: boolean
  readonly #directCopy: boolean
  // false from a batch that met stored events until a staged batch finds none
  #direct: boolean
  #partitionsCheckedAt: number
  // [from, to) in epoch ms: the months known to have partitions
  #coveredFrom: number
  #coveredTo: number

  /** `sql` should be this sink's own client with max: 1: the staging table is per session */
  constructor (sql: postgres.Sql, options: PostgresAuditSinkOptions = {}) {
    this.#sql = sql
    this.#reconnect = options.reconnect ?? null
    this.#deadlineMs = options.writeDeadlineMs ?? 10_000
    this.#now = options.now ?? Date.now
    this.#stagingReady = false
    this.#directCopy = options.directCopy ?? true
    this.#direct = this.#directCopy
    this.#partitionsCheckedAt = -Infinity
    this.#coveredFrom = Infinity
    this.#coveredTo = -Infinity
  }

  async write (batch: AuditBatch): Promise<void> {
    if (batch.events === 0 && batch.blocks.length === 0) return
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(reject, this.#deadlineMs, new Error(`audit write did not settle within ${this.#deadlineMs} ms`))
    })
    try {
      await Promise.race([this.#write(batch), deadline])
    } catch (err) {
      // the server refused a value: the session is fine, the batch is not
      if (isContentError(err)) throw new AuditContentError(`PostgreSQL refused an audit event: ${(err as Error).message}`, { cause: err })
      // a failed or stuck write may have left the client unusable: the next write gets a new one
      this.#replaceClient()
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  #replaceClient (): void {
    if (this.#reconnect === null) return
    const old = this.#sql
    this.#sql = this.#reconnect()
    this.#stagingReady = false
    this.#partitionsCheckedAt = -Infinity
    old.end({ timeout: 0 }).catch(() => {})
  }

  async #write (batch: AuditBatch): Promise<void> {
    if (batch.events > 0) await this.#ensurePartitions(batch)
    if (this.#direct || batch.events === 0) {
      const cells = batch.events > 0 ? usageCellsOf(batch).json() : null
      try {
        await this.#inSession(async (tx) => await copyDirect(tx, batch, cells))
        return
      } catch (err) {
        if (!isUniqueViolation(err)) throw err
        this.#direct = false
      }
    }
    const stored = await this.#inSession(async (tx) => await copyStaged(tx, batch))
    if (stored === batch.events) this.#direct = this.#directCopy
  }

  async close (): Promise<void> {
    await this.#sql.end({ timeout: 5 })
  }

  /** `step` in a transaction, the session's temporary tables made first if it has none yet */
  async #inSession<T> (step: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
    try {
      return await this.#transaction(step)
    } catch (err) {
      // postgres.js replaced its connection (lifetime, network): the new session has no
      // temporary tables. Anything else goes to the caller, which keeps the batch for a replay.
      if (!isUndefinedStaging(err)) throw err
      this.#stagingReady = false
      return await this.#transaction(step)
    }
  }

  async #transaction<T> (step: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
    const createStaging = !this.#stagingReady
    const result = await this.#sql.begin(async (tx) => {
      if (createStaging) {
        for (const statement of CREATE_TEMP_TABLES) await tx.unsafe(statement)
      }
      return await step(tx)
    })
    // only now: a rolled-back transaction takes the CREATE TEMP TABLEs with it
    this.#stagingReady = true
    return result as T
  }

  /**
   * Before the first write, once a day, and whenever a batch reaches outside the months known to
   * exist (a replay of last month's log, a writer with a clock far ahead).
   */
  async #ensurePartitions (batch: AuditBatch): Promise<void> {
    const min = batch.minTs
    const max = batch.maxTs
    const now = this.#now()
    if (now - this.#partitionsCheckedAt < ENSURE_EVERY_MS && min >= this.#coveredFrom && max < this.#coveredTo) return
    // Partitions are made for every month from `since` on. An event from a clock reset to 1970
    // would otherwise ask for ten years of them, a second or two of DDL inside one write: at most two years
    // back (a log left on disk that long is not a replay), and an event older than that
    // finds no partition and is quarantined like any refused content
    const since = Math.max(Math.min(min, now), now - OLDEST_PARTITION_MS)
    const monthsAhead = Math.min(MAX_MONTHS_AHEAD, Math.max(MONTHS_AHEAD, monthIndex(max) - monthIndex(now)))
    await this.#sql`SELECT relaykey_ensure_audit_partitions(${monthsAhead}::integer, ${new Date(since)}::timestamptz)`
    this.#coveredFrom = Math.min(this.#coveredFrom, monthStart(monthIndex(since)))
    this.#coveredTo = monthStart(monthIndex(now) + monthsAhead + 1)
    this.#partitionsCheckedAt = now
  }
}

/** Opens the sink's own single connection to `databaseUrl` (the application role's URL). */
export function openPostgresAuditSink (databaseUrl: string, options: PostgresAuditSinkOptions = {}): PostgresAuditSink {
  const open = (): postgres.Sql => postgres(databaseUrl, clientOptions({
    max: 1,
    // a recycled connection loses the temp table; keep the one we have
    max_lifetime: null,
    idle_timeout: 0,
    // one round trip per batch step: Nagle's 40 ms would dominate (postgres-socket.ts); no stall
    // watchdog: the server is silent while a COPY streams in, and the sink has its own deadlines
    socket: postgresSocket({ stallMs: null }),
  }))
  return new PostgresAuditSink(open(), { reconnect: open, ...options })
}

/**
 * Refused for what a row holds: data exceptions (class 22: bad encoding, a value out of range),
 * integrity violations (class 23: no partition for its time, a check) and program limits
 * (class 54: an index row too large). Anything
 * else is the server's or the connection's state, which a later write may find better.
 */
function isContentError (err: unknown): boolean {
  return err instanceof postgres.PostgresError && CONTENT_SQLSTATE.test(err.code)
}

const CONTENT_SQLSTATE = /^(22|23|54)/

function isUniqueViolation (err: unknown): boolean {
  return err instanceof postgres.PostgresError && err.code === '23505'
}

function isUndefinedStaging (err: unknown): boolean {
  return err instanceof postgres.PostgresError && err.code === '42P01' && /audit_(blocks_)?staging/.test(err.message)
}

/** months since 1970-01 (UTC) */
function monthIndex (ms: number): number {
  const d = new Date(ms)
  return d.getUTCFullYear() * 12 + d.getUTCMonth() - 1970 * 12
}

function monthStart (index: number): number {
  return Date.UTC(1970, index, 1)
}

/**
 * postgres.js 3.4 loses an error that arrives after the COPY stream was ended (a rejected row,
 * a dropped connection): the stream never finishes and the error goes to the COPY query's
 * already-settled promise (porsager/postgres#1173). Its reject hook is the one place the error
 * still passes through, so it is tapped here; without that, one bad row would hang the sink.
 */
function copyFailure (copy: object): Promise<never> {
  const query = copy as { reject?: (err: unknown) => void }
  const reject = query.reject
  if (typeof reject !== 'function') throw new Error('postgres.js COPY query has no reject hook; see copyFailure')
  const failed = new Promise<never>((_resolve, fail) => {
    query.reject = (err: unknown) => {
      reject(err)
      fail(err)
    }
  })
  // raced below; when the COPY succeeds nobody is listening any more
  failed.catch(noop)
  return failed
}

/**
 * A batch's rows go to the server in slices of this many bytes, a turn of the event loop apart:
 * a batch of thousands of events is a megabyte or more, which the driver copies twice and the
 * kernel once more, and sent at once that held up every request waiting in the same turn.
 */
const COPY_SLICE_BYTES = 64 * 1024

async function copyRows (tx: postgres.TransactionSql, statement: string, rows: Uint8Array): Promise<void> {
  // no parameters: a simple-protocol COPY, which ends cleanly if the server rejects a row
  const copy = tx.unsafe(statement)
  const failed = copyFailure(copy)
  const stream = await copy.writable()
  // a server error destroys the stream; the race below reports it, this keeps it from counting
  // as unhandled when it lands between two writes
  stream.on('error', noop)
  // the rows' bytes as the log wrote them, no encoding here; COPY data may split anywhere
  for (let at = 0; at < rows.length; at += COPY_SLICE_BYTES) {
    if (at > 0) await Promise.race([nextTurn(), failed])
    stream.write(rows.subarray(at, at + COPY_SLICE_BYTES))
  }
  stream.end()
  // finishes once the server has acknowledged the COPY
  await Promise.race([finished(stream), failed])
}

async function copyDirect (tx: postgres.TransactionSql, batch: AuditBatch, cells: string | null): Promise<void> {
  if (cells !== null) {
    await copyRows(tx, COPY_DIRECT, batch.rows)
    await tx.unsafe(ADD_CELLS, [cells])
  }
  // a block stored already (its line read again after its rows) fails this COPY as a
  // duplicate event does: the batch then takes the staging path
  if (batch.blocks.length > 0) await copyRows(tx, COPY_BLOCKS_DIRECT, blockRows(batch.blocks))
}

/** returns how many events were new */
async function copyStaged (tx: postgres.TransactionSql, batch: AuditBatch): Promise<number> {
  await copyRows(tx, COPY_STAGING, batch.rows)
  const [moved] = await tx.unsafe<Array<{ stored: number }>>(MOVE_STAGED)
  if (batch.blocks.length > 0) {
    await copyRows(tx, COPY_BLOCKS_STAGING, blockRows(batch.blocks))
    await tx.unsafe(MOVE_STAGED_BLOCKS)
  }
  return moved!.stored
}

/** blocks as COPY text rows (writer ids, numbers and hex only: nothing to escape) */
function blockRows (blocks: readonly AuditBlock[]): Buffer {
  let text = ''
  for (const b of blocks) text += b.writer_id + '\t' + b.first_seq + '\t' + b.last_seq + '\t' + b.prev_hash + '\t' + b.hash + '\n'
  return Buffer.from(text)
}

function noop (): void {}
