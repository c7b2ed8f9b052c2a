// GET /admin/audit's filters over a large trail: fills a fresh PostgreSQL database and a fresh
// SQLite file with the same synthetic events (default 1,000,000 over 30 days), then times one
// page of each kind of filter (100 events, the API's default) through PostgresAuditQuery and
// SqliteAuditQuery, as the admin server calls them. Prints the median and the slowest of the
// measured runs per query; the target is under 100 ms each. --explain prints each query's plan.
// Run: npm run bench:audit-query [-- --events N --runs N --explain]
// PostgreSQL: RELAYKEY_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres);
// the queries log in as relaykey_app, which needs local trust auth or a password in that URL.
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import type { AuditCursor, AuditFilter, AuditQuery } from '../src/audit/audit-query.js'
import { PostgresAuditQuery } from '../src/audit/postgres-audit-query.js'
import { SqliteAuditQuery } from '../src/audit/sqlite-audit-query.js'
import { CLIENT_OPTIONS } from '../src/store/postgres/client-options.js'
import { runMigrations } from '../src/store/postgres/migrate.js'
import { openSqliteDatabase } from '../src/store/sqlite/schema.js'
import { createTestDatabase } from '../test/helpers/postgres.js'
import { DAY_MS, fillPostgres, fillSqlite, MAX_EVENTS, type TrailShape } from './lib/synthetic-audit-trail.js'

const { values: flags } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '9' },
    explain: { type: 'boolean', default: false },
  },
})
const EVENTS = Number(flags.events)
const RUNS = Number(flags.runs)
if (!Number.isInteger(EVENTS) || EVENTS < 1000 || EVENTS > MAX_EVENTS) throw new Error(`--events must be a whole number from 1000 to ${MAX_EVENTS}`)
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 1000) throw new Error('--runs must be a whole number from 1 to 1000')
const WARMUP = 2
const PAGE = 100
const TARGET_MS = 100

const HOUR_MS = 3_600_000
const SHAPE: TrailShape = { events: EVENTS, end: Math.floor(Date.now() / HOUR_MS) * HOUR_MS, days: 30 }
const daysAgo = (days: number): Date => new Date(SHAPE.end - days * DAY_MS)

interface Case {
  name: string
  filter: Partial<AuditFilter>
  /** time the second page (before = the first page's next_before) instead of the first */
  secondPage?: boolean
}

const CASES: Case[] = [
  { name: 'no filter', filter: {} },
  { name: 'key_id, hot key (~5,000 events)', filter: { key_id: 'key_7' } },
  { name: 'key_id, cold key (~50 events)', filter: { key_id: 'key_4321' } },
  { name: 'customer (~1,000 events)', filter: { customer: 'customer-123' } },
  { name: 'partner, common (40 %)', filter: { partner: 'partner-00' } },
  { name: 'partner, rare (2 %)', filter: { partner: 'partner-19' } },
  { name: 'outcome, common (forwarded, 85 %)', filter: { outcome: 'forwarded' } },
  { name: 'outcome, rare (payment_failed, 0.01 %)', filter: { outcome: 'payment_failed' } },
  { name: 'from/to, one day 15 days back', filter: { from: daysAgo(15), to: daysAgo(14) } },
  { name: 'from/to, one hour 29 days back', filter: { from: daysAgo(29), to: new Date(daysAgo(29).getTime() + HOUR_MS) } },
  { name: 'key_id + from/to (7 days)', filter: { key_id: 'key_7', from: daysAgo(20), to: daysAgo(13) } },
  { name: 'partner + outcome + from/to (7 days)', filter: { partner: 'partner-01', outcome: 'rate_limited', from: daysAgo(20), to: daysAgo(13) } },
  { name: 'key_id, cold + outcome, common', filter: { key_id: 'key_4321', outcome: 'forwarded' } },
  { name: 'key_id, hot + outcome, rare', filter: { key_id: 'key_7', outcome: 'upstream_timeout' } },
  { name: 'customer (~6,000) + outcome, common', filter: { customer: 'customer-42', outcome: 'forwarded' } },
  { name: 'customer (~6,000) + outcome, rare', filter: { customer: 'customer-42', outcome: 'upstream_timeout' } },
  { name: 'partner rare + outcome common', filter: { partner: 'partner-19', outcome: 'forwarded' } },
  { name: 'partner common + outcome rare', filter: { partner: 'partner-00', outcome: 'payment_failed' } },
  { name: 'outcome rare + from/to (7 days)', filter: { outcome: 'payment_failed', from: daysAgo(20), to: daysAgo(13) } },
  { name: 'partner common, second page', filter: { partner: 'partner-00' }, secondPage: true },
  { name: 'outcome rare, second page', filter: { outcome: 'payment_failed' }, secondPage: true },
]

function fullFilter (filter: Partial<AuditFilter>): AuditFilter {
  return { key_id: null, customer: null, partner: null, outcome: null, from: null, to: null, ...filter }
}

interface Timing { median: number, max: number, rows: number }

async function time (query: AuditQuery, c: Case): Promise<Timing> {
  const filter = fullFilter(c.filter)
  let before: AuditCursor | null = null
  if (c.secondPage === true) {
    const last = (await query.list(filter, PAGE, null)).at(-1)
    if (last !== undefined) before = { ts: new Date(last.ts), id: last.id }
  }
  const ms: number[] = []
  let rows = 0
  for (let run = 0; run < WARMUP + RUNS; run++) {
    const started = performance.now()
    rows = (await query.list(filter, PAGE, before)).length
    if (run >= WARMUP) ms.push(performance.now() - started)
  }
  ms.sort((a, b) => a - b)
  return { median: ms[Math.floor(ms.length / 2)]!, max: ms.at(-1)!, rows }
}

interface Store {
  name: string
  query: AuditQuery
  /** the plan of the list statement run last, as the database executes it with those values */
  plan (): Promise<string>
  done (): Promise<void>
}

async function freshPostgres (): Promise<Store> {
  const db = await createTestDatabase()
  await runMigrations(db.url)
  const owner = postgres(db.url, { ...CLIENT_OPTIONS, max: 1 })
  let started = performance.now()
  await fillPostgres(owner, SHAPE)
  console.log(`postgres: ${EVENTS.toLocaleString('en-US')} events inserted in ${seconds(started)}`)
  started = performance.now()
  // what autovacuum does to an insert-only partition in time: statistics, and the visibility map
  const partitions = await owner<Array<{ name: string }>>`SELECT inhrelid::regclass::text AS name FROM pg_inherits WHERE inhparent = 'audit_events'::regclass`
  for (const { name } of partitions) await owner.unsafe(`VACUUM (ANALYZE) ${name}`)
  console.log(`postgres: VACUUM (ANALYZE) of ${partitions.length} partitions in ${seconds(started)}`)
  const app = new URL(db.url)
  app.username = 'relaykey_app'
  let last: { text: string, parameters: any[] } | null = null
  // as open-audit-query.ts opens it, plus a hook for --explain that notes each statement run
  const sql = postgres(app.toString(), {
    ...CLIENT_OPTIONS,
    max: 2,
    ...(flags.explain ? { debug: (_connection: number, text: string, parameters: any[]) => { last = { text, parameters } } } : {}),
  })
  return {
    name: 'postgres',
    query: new PostgresAuditQuery(sql),
    async plan () {
      if (last === null) return '(no statement)'
      const rows = await owner.unsafe(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${last.text}`, last.parameters)
      return rows.map((row) => row['QUERY PLAN']).join('\n')
    },
    async done () {
      await sql.end({ timeout: 5 })
      await owner.end({ timeout: 5 })
      await db.drop()
    },
  }
}

async function freshSqlite (): Promise<Store> {
  const dir = await mkdtemp(join(tmpdir(), 'relaykey-bench-'))
  const file = join(dir, 'relaykey.db')
  const writer = openSqliteDatabase(file)
  const started = performance.now()
  fillSqlite(writer, SHAPE)
  writer.pragma('wal_checkpoint(TRUNCATE)')
  writer.close()
  console.log(`sqlite: ${EVENTS.toLocaleString('en-US')} events inserted in ${seconds(started)} (no ANALYZE: RelayKey never runs one)`)
  // as open-audit-query.ts opens it
  const db = new Database(file, { readonly: true, fileMustExist: true })
  db.pragma('busy_timeout = 5000')
  let last: Database.Statement | null = null
  const prepare = db.prepare.bind(db)
  if (flags.explain) {
    // notes each statement run: SqliteAuditQuery prepares one per shape of filter and reuses it
    db.prepare = ((text: string) => {
      const statement = prepare(text)
      const all = statement.all.bind(statement)
      statement.all = ((...args: unknown[]) => {
        last = statement
        return all(...args)
      }) as typeof statement.all
      return statement
    }) as typeof db.prepare
  }
  return {
    name: 'sqlite',
    query: new SqliteAuditQuery(db),
    async plan () {
      if (last === null) return '(no statement)'
      // no STAT4 and no ANALYZE: SQLite's plan does not depend on the values, so none are bound
      const names = [...new Set(last.source.match(/@\w+/g) ?? [])].map((name) => name.slice(1))
      const rows = prepare(`EXPLAIN QUERY PLAN ${last.source}`).all(Object.fromEntries(names.map((name) => [name, null]))) as Array<{ detail: string }>
      return rows.map((row) => row.detail).join('\n')
    },
    async done () {
      db.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

function seconds (since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`
}

function ms (n: number): string {
  return n.toFixed(2).padStart(8)
}

async function main (): Promise<void> {
  console.log(`audit-query: ${EVENTS.toLocaleString('en-US')} events over ${SHAPE.days} days, pages of ${PAGE}, ` +
    `median and slowest of ${RUNS} runs after ${WARMUP} warm-up, ${cpus().length} × ${cpus()[0]!.model}, Node ${process.version}`)
  const stores = [await freshPostgres(), await freshSqlite()]
  try {
    const results: Timing[][] = CASES.map(() => [])
    for (const store of stores) {
      for (let i = 0; i < CASES.length; i++) {
        results[i]!.push(await time(store.query, CASES[i]!))
        if (flags.explain) {
          console.log(`\n${store.name}: ${CASES[i]!.name}`)
          console.log(await store.plan())
        }
      }
    }
    const header = `${'filter'.padEnd(42)} | ${stores.map((s) => `${s.name} median / max ms, rows`.padEnd(34)).join(' | ')}`
    console.log(`\n${header}\n${'-'.repeat(header.length)}`)
    let slowest = 0
    for (let i = 0; i < CASES.length; i++) {
      const cells = results[i]!.map((t) => `${ms(t.median)} / ${ms(t.max)}, ${String(t.rows).padStart(3)}`.padEnd(34))
      slowest = Math.max(slowest, ...results[i]!.map((t) => t.median))
      console.log(`${CASES[i]!.name.padEnd(42)} | ${cells.join(' | ')}`)
    }
    console.log(`\nslowest median: ${slowest.toFixed(2)} ms (target: under ${TARGET_MS} ms) — ${slowest < TARGET_MS ? 'met' : 'MISSED'}`)
  } finally {
    for (const store of stores) await store.done()
  }
}

await main()
