// A large synthetic audit trail, the same in PostgreSQL and in SQLite: event i of n is at a fixed
// time in the `days` before `end` (oldest first, as they are appended), and its key, partner and
// outcome come from multiplicative hashes of i, which both SQL and JS compute exactly alike.
// Hashes rather than random(): both stores hold the same events, so their answers compare.
//
//   keys       100 hot keys with half the events (~5,000 each at 1M), 9,900 cold ones (~50 each)
//   customers  customer-<key mod 500>; none for invalid_key, which has no key either
//   partners   partner-00 40 %, partner-01 20 %, partner-02..21 2 % each
//   outcomes   OUTCOMES below: forwarded 85 % down to payment_failed at 1 in 10,000
import { randomUUID } from 'node:crypto'
import type Database from 'better-sqlite3'
import type postgres from 'postgres'
import { usageRollupOf } from '../../src/audit/postgres-audit-sink.js'
import { addStoredEventsToRollups } from '../../src/store/sqlite/schema.js'

export const DAY_MS = 86_400_000
export const HOT_KEYS = 100
export const COLD_KEYS = 9_900
export const CUSTOMERS = 500

/** [upper bound of (hash mod 10,000), outcome]: each outcome's share of the events in 1/10,000 */
export const OUTCOMES: ReadonlyArray<readonly [number, string]> = [
  [8500, 'forwarded'],
  [9300, 'rate_limited'],
  [9600, 'budget_exceeded'],
  [9800, 'upstream_error'],
  [9900, 'endpoint_not_allowed'],
  [9950, 'invalid_key'],
  [9990, 'circuit_open'],
  [9999, 'upstream_timeout'],
  [10000, 'payment_failed'],
]

/** [upper bound of (hash mod 100), first partner number, how many share the band evenly] */
const PARTNER_BANDS: ReadonlyArray<readonly [number, number, number]> = [[40, 0, 1], [60, 1, 1], [100, 2, 20]]

// odd multipliers (Knuth's and two of murmur3's constants); i × multiplier stays below 2^53 for
// i up to 2.7 million, so JS doubles compute it exactly, as PostgreSQL's bigint does
const KEY_MIX = 2654435761
const PARTNER_MIX = 2246822519
const OUTCOME_MIX = 3266489917
export const MAX_EVENTS = 2_700_000

export interface TrailShape {
  events: number
  /** epoch ms of the newest event */
  end: number
  days: number
}

/** 24 well-mixed bits of i: the high bits of (i × multiplier) mod 2^32 */
function mix (i: number, multiplier: number): number {
  return ((i * multiplier) % 4294967296) >>> 8
}

function keyNumber (i: number): number {
  const u = mix(i, KEY_MIX)
  return u % 2 === 0 ? (u >>> 1) % HOT_KEYS : HOT_KEYS + (u >>> 1) % COLD_KEYS
}

function partnerName (i: number): string {
  const r = mix(i, PARTNER_MIX) % 100
  const [, first, count] = PARTNER_BANDS.find(([upTo]) => r < upTo)!
  return `partner-${String(first + r % count).padStart(2, '0')}`
}

function outcomeName (i: number): string {
  const r = mix(i, OUTCOME_MIX) % 10000
  return OUTCOMES.find(([upTo]) => r < upTo)![1]
}

/** the SQL twin of mix(), keyNumber(), partnerName() and outcomeName() over a bigint column `i` */
const SQL_MIX = (multiplier: number): string => `(((i * ${multiplier}) % 4294967296) >> 8)`
const SQL_KEY = `CASE WHEN ${SQL_MIX(KEY_MIX)} % 2 = 0 THEN (${SQL_MIX(KEY_MIX)} >> 1) % ${HOT_KEYS}
                      ELSE ${HOT_KEYS} + (${SQL_MIX(KEY_MIX)} >> 1) % ${COLD_KEYS} END`
const SQL_PARTNER = `'partner-' || lpad((CASE ${PARTNER_BANDS.map(([upTo, first, count]) =>
  `WHEN ${SQL_MIX(PARTNER_MIX)} % 100 < ${upTo} THEN ${first} + ${SQL_MIX(PARTNER_MIX)} % 100 % ${count}`).join(' ')} END)::text, 2, '0')`
const SQL_OUTCOME = `CASE ${OUTCOMES.map(([upTo, name]) => `WHEN ${SQL_MIX(OUTCOME_MIX)} % 10000 < ${upTo} THEN '${name}'`).join(' ')} END`

const COLUMNS = 'ts, id, request_id, key_id, customer, team, service, environment, partner, credential_id, method, path, ' +
  'status, outcome, attempts, latency_ms, upstream_latency_ms, cost, bytes_in, bytes_out, payment_tx, writer_id, seq, prev_hash, hash'

/** epoch ms of event i (1-based): evenly spread, the last one at `end` */
function eventTime (shape: TrailShape, i: number): number {
  return shape.end - Math.floor((shape.events - i) * shape.days * DAY_MS / shape.events)
}

/** Appends the trail to a migrated database as its owner, in one INSERT … SELECT generate_series. */
export async function fillPostgres (sql: postgres.Sql, shape: TrailShape): Promise<void> {
  const { events, end, days } = shape
  await sql`SELECT relaykey_ensure_audit_partitions(1, ${new Date(end - days * DAY_MS)})`
  await sql.unsafe(`
    INSERT INTO audit_events (${COLUMNS})
    SELECT 'epoch'::timestamptz + (${end} - (${events} - i) * ${days * DAY_MS} / ${events}) * interval '1 millisecond',
           gen_random_uuid(), 'req-' || i,
           CASE WHEN outcome = 'invalid_key' THEN NULL ELSE 'key_' || k END,
           CASE WHEN outcome = 'invalid_key' THEN NULL ELSE 'customer-' || (k % ${CUSTOMERS}) END,
           'payments', 'checkout', 'production', partner, 'cred_1', 'GET', '/v1/resources/' || (i % 1000),
           CASE WHEN outcome = 'forwarded' THEN 200 ELSE 429 END, outcome,
           CASE WHEN outcome = 'forwarded' THEN 1 ELSE 0 END, 20 + i % 180, NULL, 1, 512, 2048, NULL,
           'bench-writer', i, lpad(to_hex(i - 1), 64, '0'), lpad(to_hex(i), 64, '0')
      FROM (SELECT i, ${SQL_KEY} AS k, ${SQL_PARTNER} AS partner, ${SQL_OUTCOME} AS outcome
              FROM generate_series(1::bigint, ${events}::bigint) AS i) AS g`)
  // the hourly usage rollups the audit sink would have kept (audit filters find hours there)
  await sql.unsafe(`INSERT INTO audit_usage_hourly ${usageRollupOf('audit_events')}`)
}

/** Appends the trail to an SQLite file opened with its schema, 10,000 rows per transaction. */
export function fillSqlite (db: Database.Database, shape: TrailShape): void {
  const insert = db.prepare(`INSERT INTO audit_events (${COLUMNS}) VALUES (${COLUMNS.split(', ').map(() => '?').join(', ')})`)
  const batch = db.transaction((first: number, last: number) => {
    for (let i = first; i <= last; i++) {
      const outcome = outcomeName(i)
      const keyed = outcome !== 'invalid_key'
      const k = keyNumber(i)
      const forwarded = outcome === 'forwarded'
      insert.run(
        new Date(eventTime(shape, i)).toISOString(), randomUUID(), `req-${i}`,
        keyed ? `key_${k}` : null, keyed ? `customer-${k % CUSTOMERS}` : null,
        'payments', 'checkout', 'production', partnerName(i), 'cred_1', 'GET', `/v1/resources/${i % 1000}`,
        forwarded ? 200 : 429, outcome, forwarded ? 1 : 0, 20 + i % 180, null, 1, 512, 2048, null,
        'bench-writer', i, (i - 1).toString(16).padStart(64, '0'), i.toString(16).padStart(64, '0'))
    }
  })
  for (let first = 1; first <= shape.events; first += 10_000) batch(first, Math.min(shape.events, first + 9_999))
  // the hourly usage rollups the audit sink would have kept (audit filters find hours there)
  addStoredEventsToRollups(db)
}
