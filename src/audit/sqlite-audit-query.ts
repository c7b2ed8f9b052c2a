// AuditQuery over the embedded SQLite file (ts is stored as RFC 3339 text, which sorts in time order).
import type Database from 'better-sqlite3'
import type { ChainedAuditEvent } from './audit-event.js'
import { foldUsage, type AuditCursor, type AuditQuery, type OutcomeRow, type UsageCounts, type UsageFilter } from './audit-query.js'

export class SqliteAuditQuery implements AuditQuery {
  readonly #db: Database.Database
  readonly #usage: Database.Statement
  readonly #list: Database.Statement

  constructor (db: Database.Database) {
    this.#db = db
    // SQLite's sum() turns TEXT into a 64-bit integer or a double, inexact past 2^63 (or 2^53):
    // atomic units need an exact sum, so this one adds BigInts, in the query, without moving
    // the rows to JS first. The sink stores only canonical amounts, so BigInt() never throws.
    db.aggregate('relaykey_decimal_sum', {
      start: () => 0n,
      step: addDecimal,
      result: (total: bigint) => total.toString(),
      deterministic: true,
    })
    // NULL filters match everything, so one prepared statement serves every combination
    this.#usage = db.prepare(`
      SELECT outcome, count(*) AS n, coalesce(sum(cost), 0) AS cost,
             coalesce(sum(max(attempts - 1, 0)), 0) AS retried,
             sum(status >= 500) AS server_errors,
             count(payment_tx) AS paid,
             relaykey_decimal_sum(payment_amount) FILTER (WHERE payment_tx IS NOT NULL) AS paid_amount
        FROM audit_events
       WHERE ts >= @from AND ts < @to
         AND (@key_id IS NULL OR key_id = @key_id)
         AND (@customer IS NULL OR customer = @customer)
         AND (@partner IS NULL OR partner = @partner)
       GROUP BY outcome`)
    this.#list = db.prepare(`
      SELECT * FROM audit_events
       WHERE (@key_id IS NULL OR key_id = @key_id)
         AND (@before IS NULL OR ts < @before OR (ts = @before AND @before_id IS NOT NULL AND id < @before_id))
       ORDER BY ts DESC, id DESC
       LIMIT @limit`)
  }

  async usage (filter: UsageFilter, from: Date, to: Date): Promise<UsageCounts> {
    const rows = this.#usage.all({ ...filter, from: from.toISOString(), to: to.toISOString() }) as OutcomeRow[]
    return foldUsage(rows)
  }

  async list (keyId: string | null, limit: number, before: AuditCursor | null): Promise<ChainedAuditEvent[]> {
    const rows = this.#list.all({
      key_id: keyId, before: before === null ? null : before.ts.toISOString(), before_id: before?.id ?? null, limit,
    }) as Array<ChainedAuditEvent & { ts: string }>
    return rows.map((r) => ({ ...r, ts: Date.parse(r.ts) }))
  }

  async close (): Promise<void> {
    this.#db.close()
  }
}

/** `amount` is the column's value, TEXT or NULL (the typings would have it be like `total`) */
function addDecimal (total: bigint, amount: unknown): bigint {
  return amount === null ? total : total + BigInt(amount as string)
}
