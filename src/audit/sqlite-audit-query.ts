// AuditQuery over the embedded SQLite file (ts is stored as RFC 3339 text, which sorts in time order).
import type Database from 'better-sqlite3'
import type { ChainedAuditEvent } from './audit-event.js'
import { floorHour, hoursBelow, hoursFrom, HOUR_MS, HOURS_PER_STEP, listsByHours } from './rollup-hours.js'
import { registerDecimalSum } from '../store/sqlite/schema.js'
import { foldUsage, type AuditCursor, type AuditFilter, type AuditQuery, type OutcomeRow, type UsageCounts, type UsageFilter } from './audit-query.js'

/**
 * AuditFilter's exact-match fields (column names, fixed here, never taken from a request), the
 * indexed ones that usually match fewest events first: one key, then one outcome (the refusal
 * codes looked for are rare; a filter on 'forwarded' with a customer or partner goes by the
 * rollups' hours instead), then customer and partner, which have no index (rollup-hours.ts).
 * SQLite has no statistics on this file (nothing runs ANALYZE), so given two of them it picks an
 * index blindly: it read a key's forwarded events through (outcome, ts), 373 ms over 1,000,000
 * events in bench:audit-query, not the key's 50 rows. Only the first one given may use its
 * index; a unary + keeps the others' out of the plan.
 */
const MATCHED = ['key_id', 'outcome', 'customer', 'partner'] as const

export class SqliteAuditQuery implements AuditQuery {
  readonly #db: Database.Database
  readonly #usage: Database.Statement
  /** list statements by their SQL text: one per combination of conditions, prepared on first use */
  readonly #lists: Map<string, Database.Statement>

  constructor (db: Database.Database) {
    this.#db = db
    registerDecimalSum(db)
    // from the hourly rollups, which the sink keeps equal to audit_events. NULL filters match
    // everything, so one prepared statement serves every combination
    this.#usage = db.prepare(`
      SELECT outcome, sum(requests) AS n, sum(cost) AS cost, sum(retried) AS retried,
             sum(server_errors) AS server_errors, sum(paid) AS paid,
             sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out,
             relaykey_decimal_sum(paid_amount) AS paid_amount
        FROM audit_usage_hourly
       WHERE hour >= @from AND hour < @to
         AND (@key_id IS NULL OR key_id = @key_id)
         AND (@customer IS NULL OR customer = @customer)
         AND (@partner IS NULL OR partner = @partner)
       GROUP BY outcome`)
    this.#lists = new Map()
  }

  async usage (filter: UsageFilter, from: Date, to: Date): Promise<UsageCounts> {
    const rows = this.#usage.all({ ...filter, from: from.toISOString(), to: to.toISOString() }) as OutcomeRow[]
    return foldUsage(rows)
  }

  async list (filter: AuditFilter, limit: number, before: AuditCursor | null): Promise<ChainedAuditEvent[]> {
    if (!listsByHours(filter)) return this.#events(filter, limit, before, null)
    const events: ChainedAuditEvent[] = []
    // no earlier than the oldest stored event (rollup hours can outlive the events behind them)
    const oldest = (this.#statement('SELECT min(ts) AS ts FROM audit_events').get() as { ts: string | null }).ts
    if (oldest === null) return events
    const from = Math.max(hoursFrom(filter), floorHour(Date.parse(oldest)))
    let below = hoursBelow(filter, before)
    for (;;) {
      const params: Record<string, string | number> = { limit: HOURS_PER_STEP }
      const where: string[] = []
      for (const column of ['customer', 'partner', 'outcome'] as const) {
        if (filter[column] === null) continue
        where.push(`${column} = @${column}`)
        params[column] = filter[column]!
      }
      if (from !== -Infinity) {
        where.push('hour >= @from')
        params.from = new Date(from).toISOString()
      }
      if (below !== Infinity) {
        where.push('hour < @below')
        params.below = new Date(below).toISOString()
      }
      const hours = (this.#statement(`SELECT DISTINCT hour FROM audit_usage_hourly WHERE ${where.join(' AND ')} ORDER BY hour DESC LIMIT @limit`)
        .all(params) as Array<{ hour: string }>).map((h) => Date.parse(h.hour))
      if (hours.length === 0) return events
      for (const event of this.#events(filter, limit - events.length, before, hours)) events.push(event)
      if (events.length >= limit || hours.length < HOURS_PER_STEP) return events
      below = hours[hours.length - 1]!
    }
  }

  /** the newest events matching, within `hours` (each an hour's start, newest first) when given */
  #events (filter: AuditFilter, limit: number, before: AuditCursor | null, hours: number[] | null): ChainedAuditEvent[] {
    const where: string[] = []
    const params: Record<string, string | number> = { limit }
    for (const column of MATCHED) {
      const value = filter[column]
      if (value !== null) {
        where.push(`${where.length === 0 ? '' : '+'}${column} = @${column}`)
        params[column] = value
      }
    }
    if (filter.from !== null) {
      where.push('ts >= @from')
      params.from = filter.from.toISOString()
    }
    if (filter.to !== null) {
      where.push('ts < @to')
      params.to = filter.to.toISOString()
    }
    if (before !== null) {
      params.before = before.ts.toISOString()
      if (before.id === null) {
        where.push('ts < @before')
      } else {
        where.push('(ts, id) < (@before, @before_id)')
        params.before_id = before.id
      }
    }
    const rows: Array<ChainedAuditEvent & { ts: string }> = []
    if (hours === null) {
      rows.push(...this.#listStatement(where).all(params) as Array<ChainedAuditEvent & { ts: string }>)
    } else {
      // an hour at a time, newest first, each read along the (ts, id) key until the page is full
      const statement = this.#listStatement([...where, 'ts >= @hour', 'ts < @hour_end'])
      for (const hour of hours) {
        params.limit = limit - rows.length
        params.hour = new Date(hour).toISOString()
        params.hour_end = new Date(hour + HOUR_MS).toISOString()
        rows.push(...statement.all(params) as Array<ChainedAuditEvent & { ts: string }>)
        if (rows.length >= limit) break
      }
    }
    return rows.map((r) => ({ ...r, ts: Date.parse(r.ts) }))
  }

  // SQLite plans a statement when it is prepared: a condition written to switch itself off
  // (`@x IS NULL OR x = @x`) can use no index (one such statement read the whole table for a key
  // with 50 events, 400 ms over 1,000,000), so each combination gets its own text
  #listStatement (where: readonly string[]): Database.Statement {
    return this.#statement(`SELECT * FROM audit_events ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')} `}ORDER BY ts DESC, id DESC LIMIT @limit`)
  }

  #statement (text: string): Database.Statement {
    let statement = this.#lists.get(text)
    if (statement === undefined) {
      statement = this.#db.prepare(text)
      this.#lists.set(text, statement)
    }
    return statement
  }

  async close (): Promise<void> {
    this.#db.close()
  }
}

/** `amount` is the column's value, TEXT or NULL (the typings would have it be like `total`) */
