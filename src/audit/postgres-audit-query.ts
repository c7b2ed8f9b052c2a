// AuditQuery over PostgreSQL (distributed mode).
import type postgres from 'postgres'
import type { ChainedAuditEvent } from './audit-event.js'
import { floorHour, hoursBelow, hoursFrom, HOURS_PER_STEP, listsByHours } from './rollup-hours.js'
import { foldUsage, type AuditCursor, type AuditFilter, type AuditQuery, type OutcomeRow, type UsageCounts, type UsageFilter } from './audit-query.js'

export class PostgresAuditQuery implements AuditQuery {
  readonly #sql: postgres.Sql

  constructor (sql: postgres.Sql) {
    this.#sql = sql
  }

  async usage (filter: UsageFilter, from: Date, to: Date): Promise<UsageCounts> {
    const sql = this.#sql
    // from the hourly rollups (migrations/0008), which the sink keeps equal to audit_events
    const rows = await sql<OutcomeRow[]>`
      SELECT outcome,
             sum(requests)::float8 AS n,
             sum(cost)::float8 AS cost,
             sum(retried)::float8 AS retried,
             sum(server_errors)::float8 AS server_errors,
             sum(paid)::float8 AS paid,
             sum(bytes_in)::float8 AS bytes_in,
             sum(bytes_out)::float8 AS bytes_out,
             -- numeric all the way: exact at any size; text so postgres.js hands it over as is
             sum(paid_amount)::text AS paid_amount
        FROM audit_usage_hourly
       WHERE hour >= ${from} AND hour < ${to}
         ${filter.key_id === null ? sql`` : sql`AND key_id = ${filter.key_id}`}
         ${filter.customer === null ? sql`` : sql`AND customer = ${filter.customer}`}
         ${filter.partner === null ? sql`` : sql`AND partner = ${filter.partner}`}
       GROUP BY outcome`
    return foldUsage(rows)
  }

  async list (filter: AuditFilter, limit: number, before: AuditCursor | null): Promise<ChainedAuditEvent[]> {
    if (!listsByHours(filter)) return await this.#events(filter, limit, before, null)
    const sql = this.#sql
    const events: ChainedAuditEvent[] = []
    // no earlier than the oldest stored event: rollup hours outlive a detached partition, and
    // walking those would cost a query per 24 empty hours
    const [oldest] = await sql<Array<{ ts: Date | null }>>`SELECT min(ts) AS ts FROM audit_events`
    if (oldest?.ts == null) return events
    const from = Math.max(hoursFrom(filter), floorHour(oldest.ts.getTime()))
    let below = hoursBelow(filter, before)
    for (;;) {
      const hours = await sql<Array<{ hour: Date }>>`
        SELECT DISTINCT hour FROM audit_usage_hourly
         WHERE true
           ${filter.customer === null ? sql`` : sql`AND customer = ${filter.customer}`}
           ${filter.partner === null ? sql`` : sql`AND partner = ${filter.partner}`}
           ${filter.outcome === null ? sql`` : sql`AND outcome = ${filter.outcome}`}
           ${from === -Infinity ? sql`` : sql`AND hour >= ${new Date(from)}`}
           ${below === Infinity ? sql`` : sql`AND hour < ${new Date(below)}`}
         ORDER BY hour DESC
         LIMIT ${HOURS_PER_STEP}`
      if (hours.length === 0) return events
      for (const event of await this.#events(filter, limit - events.length, before, hours.map((h) => h.hour))) events.push(event)
      if (events.length >= limit || hours.length < HOURS_PER_STEP) return events
      below = hours[hours.length - 1]!.hour.getTime()
    }
  }

  /** the newest events matching, within `hours` (each an hour's start) when given */
  async #events (filter: AuditFilter, limit: number, before: AuditCursor | null, hours: Date[] | null): Promise<ChainedAuditEvent[]> {
    const sql = this.#sql
    // only the conditions asked for, so the planner sees each combination as it is
    const matching = sql`
         ${filter.key_id === null ? sql`` : sql`AND key_id = ${filter.key_id}`}
         ${filter.customer === null ? sql`` : sql`AND customer = ${filter.customer}`}
         ${filter.partner === null ? sql`` : sql`AND partner = ${filter.partner}`}
         ${filter.outcome === null ? sql`` : sql`AND outcome = ${filter.outcome}`}
         ${filter.from === null ? sql`` : sql`AND ts >= ${filter.from}`}
         ${filter.to === null ? sql`` : sql`AND ts < ${filter.to}`}
         ${before === null ? sql`` : before.id === null ? sql`AND ts < ${before.ts}` : sql`AND (ts, id) < (${before.ts}, ${before.id}::uuid)`}`
    const rows = hours === null
      ? await sql`SELECT * FROM audit_events WHERE true ${matching} ORDER BY ts DESC, id DESC LIMIT ${limit}`
      // each hour read newest first along the primary key, stopping at `limit` matches
      : await sql`
        SELECT e.* FROM unnest(${arrayLiteral(hours)}::timestamptz[]) AS h(hour)
        CROSS JOIN LATERAL (
          SELECT * FROM audit_events
           WHERE ts >= h.hour AND ts < h.hour + interval '1 hour' ${matching}
           ORDER BY ts DESC, id DESC
           LIMIT ${limit}) AS e
        ORDER BY e.ts DESC, e.id DESC
        LIMIT ${limit}`
    return rows.map((r) => ({
      ...(r as unknown as ChainedAuditEvent),
      ts: (r.ts as Date).getTime(),
      cost: Number(r.cost),
      bytes_in: Number(r.bytes_in),
      bytes_out: Number(r.bytes_out),
      seq: Number(r.seq),
    }))
  }

  async close (): Promise<void> {
    await this.#sql.end({ timeout: 5 })
  }
}

/**
 * the hours as a PostgreSQL array literal, sent as one text parameter: how postgres.js sends a
 * JS array depends on the client's options (a bare comma list with some), and ISO times need no
 * quoting
 */
function arrayLiteral (hours: readonly Date[]): string {
  return '{' + hours.map((h) => h.toISOString()).join(',') + '}'
}
