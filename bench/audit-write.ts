// What an audit event costs, each scenario on a fresh store:
//  - the pipeline as a worker runs it (record → COPY text row → the turn's block hash and log
//    write → memory's queue → the sink), events recorded at RATE a second in event-loop turns
//    of up to TURN (a busy worker; a store that keeps up ships from memory): CPU of the event
//    loop's thread per event, and of the store (the PostgreSQL backend, or SQLite's writer
//    thread);
//  - direct ingest: the sink alone taking rows already encoded, in the pipeline's batches, as
//    shipped and with each secondary index dropped, which prices what each index costs a row; then
//    the table with its primary key alone and with nothing at all (no rollup either): the floor
//    of storing one row per event; and two sinks at once, as a node's two workers ship.
// The event mix has 500 keys, each of one customer (BENCH_KEYS=n for another count: fewer keys,
// fewer usage rollup cells per batch); BENCH_ONLY=<regex> runs only the scenarios it matches.
// BENCH_TURN (events per event-loop turn, 32), BENCH_BATCH and BENCH_FLUSH_MS (the pipeline's
// batch size and flush interval, its defaults) try other shapes of traffic and batching.
// Run: npm run bench:audit -- [events] [rate]   (PostgreSQL: RELAYKEY_TEST_POSTGRES_URL, default
// postgres://postgres@127.0.0.1:5432/postgres; the sink logs in as relaykey_app, which needs
// local trust auth or a password in that URL)
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import pino from 'pino'
import postgres from 'postgres'
import { batchOfRows, rowsOf, rowsText, type AuditBatch } from '../src/audit/audit-batch.js'
import { AUDIT_COLUMNS, CopyRowEncoder, parseCopyRow } from '../src/audit/audit-copy-text.js'
import type { AuditEvent } from '../src/audit/audit-event.js'
import { AUDIT_PIPELINE_DEFAULTS, AuditPipeline } from '../src/audit/audit-pipeline.js'
import type { AuditSink } from '../src/audit/audit-sink.js'
import { UsageCells } from '../src/audit/usage-cells.js'
import { openPostgresAuditSink } from '../src/audit/postgres-audit-sink.js'
import { SqliteAuditSink } from '../src/audit/sqlite-audit-sink.js'
import { openThreadedSqliteAuditSink } from '../src/audit/threaded-sqlite-audit-sink.js'
import { AUDIT_WRITER_CHECKPOINT_PAGES, openSqliteDatabase } from '../src/store/sqlite/schema.js'
import { runMigrations } from '../src/store/postgres/migrate.js'
import { createTestDatabase } from '../test/helpers/postgres.js'
import { treeCpuMicros } from './lib/process-cpu.js'
import { threadCpuMicros } from './lib/thread-cpu.js'

const EVENTS = Number(process.argv[2] ?? 200_000)
/** events a busy worker ends in one event-loop turn, and a second */
const TURN = Number(process.env.BENCH_TURN ?? 32)
const RATE = Number(process.argv[3] ?? 20_000)
/** events a batch: the pipeline's (BENCH_BATCH for another), for direct ingest too */
const BATCH = Number(process.env.BENCH_BATCH ?? AUDIT_PIPELINE_DEFAULTS.batchSize)
/** the pipeline's flush interval (BENCH_FLUSH_MS for another) */
const FLUSH_MS = Number(process.env.BENCH_FLUSH_MS ?? AUDIT_PIPELINE_DEFAULTS.flushIntervalMs)
/** distinct keys in the mix (BENCH_KEYS); each belongs to one customer */
const KEYS = Number(process.env.BENCH_KEYS ?? 500)
const ROUNDS = 3
const SECONDARY_INDEXES = ['audit_events_key_ts_idx', 'audit_events_outcome_ts_idx']
const logger = pino({ level: 'silent' })

/** A realistic mix: mostly forwarded and keyed, some refusals without a key. */
function makeEvents (count: number): AuditEvent[] {
  const start = Date.now() - count
  const events: AuditEvent[] = []
  for (let i = 0; i < count; i++) {
    const refused = i % 10 === 0
    const key = i % KEYS
    events.push({
      id: randomUUID(),
      ts: start + i,
      request_id: randomUUID(),
      key_id: refused ? null : `key_${key.toString(36).padStart(8, '0')}`,
      customer: refused ? null : `customer-${key % 200}`,
      team: i % 3 === 0 ? 'payments' : null,
      service: i % 3 === 0 ? 'checkout' : null,
      environment: refused ? null : 'production',
      partner: i % 4 === 0 ? 'kyc-vendor' : 'acme',
      credential_id: refused ? null : 'cred_01HZX3',
      method: i % 5 === 0 ? 'POST' : 'GET',
      path: `/resources/applicants/${i % 10_000}/documents`,
      status: refused ? 429 : 200,
      outcome: refused ? 'rate_limited' : 'forwarded',
      attempts: refused ? 0 : 1,
      latency_ms: 20 + (i % 180),
      upstream_latency_ms: refused ? null : 15 + (i % 170),
      cost: refused ? 0 : 150,
      bytes_in: 512,
      bytes_out: 2048 + (i % 4096),
      payment_tx: null,
      payment_amount: null,
    })
  }
  return events
}

/** the rows a writer would have logged, in batches as the drain ships them */
function encodeBatches (events: readonly AuditEvent[]): AuditBatch[] {
  const encoder = new CopyRowEncoder()
  const writer = randomUUID()
  const batches: AuditBatch[] = []
  for (let i = 0; i < events.length; i += BATCH) {
    const part = events.slice(i, i + BATCH)
    // as a worker ships them from memory: with the usage cells counted when each was recorded
    const cells = new UsageCells()
    for (const e of part) cells.add(e)
    batches.push({ ...batchOfRows(part.map((e, j) => encoder.eventRow(e, writer, i + j + 1)), []), cells })
  }
  return batches
}

/** the same batches without their usage cells: what the table alone costs, no rollup */
function withoutCells (batches: readonly AuditBatch[]): AuditBatch[] {
  return batches.map((b) => ({ ...b, cells: new UsageCells() }))
}

interface Store {
  sink: AuditSink
  /** the PostgreSQL backend serving the sink; null in embedded mode */
  serverPid: number | null
}

/** `drop`: statements run as the administrator first (DROP INDEX …, the primary key) */
async function freshPostgres (drop: string[] = [], sinks = 1): Promise<{ stores: Store[], done: () => Promise<void> }> {
  const db = await createTestDatabase()
  await runMigrations(db.url)
  const admin = postgres(db.url, { max: 1, onnotice: () => {} })
  for (const statement of drop) await admin.unsafe(statement)
  const app = new URL(db.url)
  app.username = 'relaykey_app'
  const opened: AuditSink[] = []
  for (let i = 0; i < sinks; i++) {
    const sink = openPostgresAuditSink(app.toString())
    // partitions exist before the clock starts, as in a running process
    await sink.write(encodeBatches(makeEvents(1))[0]!)
    opened.push(sink)
  }
  // in connection order: each sink's first write opened its backend
  const backends = await admin<Array<{ pid: number }>>`
    SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND usename = 'relaykey_app' ORDER BY backend_start`
  await admin.end()
  return {
    stores: opened.map((sink, i) => ({ sink, serverPid: backends[i]?.pid ?? null })),
    async done () {
      for (const sink of opened) await sink.close()
      await db.drop()
    },
  }
}

const dropIndexes = (indexes: string[]): string[] => indexes.map((index) => `DROP INDEX ${index}`)
const DROP_PRIMARY_KEY = 'ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey'

async function freshSqliteFile (): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'relaykey-bench-'))
  return { dir, file: join(dir, 'relaykey.db') }
}

interface Cost {
  /** µs of CPU per event: the event loop's thread, the store (PostgreSQL backend or SQLite thread) */
  loop: number
  store: number | null
  rate: number
  /** the pipeline's scenarios: how long the event loop was held up (p99 and max, ms) */
  stall?: { p99: number, max: number }
}

/** records every event at RATE a second, in turns of at most TURN, through a pipeline on `sink`, until all are stored */
async function throughPipeline (sink: AuditSink, serverPid: number | null, events: readonly AuditEvent[], record = true): Promise<Cost> {
  const dir = await mkdtemp(join(tmpdir(), 'relaykey-bench-log-'))
  const pipeline = new AuditPipeline({ sink, logDir: join(dir, 'audit-log'), logger, batchSize: BATCH, flushIntervalMs: FLUSH_MS, maxQueued: Math.max(AUDIT_PIPELINE_DEFAULTS.maxQueued, BATCH) })
  await pipeline.start()
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  const server = treeCpuMicros(serverPid ?? undefined)
  const threads = threadCpuMicros()
  const started = performance.now()
  for (let i = 0; i < events.length;) {
    const due = Math.min(events.length, Math.floor((performance.now() - started) * RATE / 1000))
    const end = Math.min(due, i + TURN)
    for (; i < end; i++) if (record) pipeline.record(events[i]!)
    // behind: another turn at once; caught up: wait for more to be due
    if (i < due) await nextTurn()
    else await sleep(1)
  }
  await pipeline.flush()
  delay.disable()
  const seconds = (performance.now() - started) / 1000
  const threadsAfter = threadCpuMicros()
  const serverAfter = treeCpuMicros(serverPid ?? undefined)
  await pipeline.close()
  await rm(dir, { recursive: true, force: true })
  if (pipeline.stats().written !== (record ? events.length : 0)) throw new Error(`stored ${pipeline.stats().written} of ${events.length}`)
  return {
    loop: threads === null || threadsAfter === null ? Number.NaN : (threadsAfter.main - threads.main) / events.length,
    store: serverPid !== null
      ? (server === null || serverAfter === null ? null : (serverAfter - server) / events.length)
      : (threads === null || threadsAfter === null ? null : (threadsAfter.others - threads.others) / events.length),
    rate: events.length / seconds,
    stall: { p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 },
  }
}

/** the sinks alone, rows already encoded; with several, each writes every n-th batch at once */
async function directIngest (stores: readonly Store[], batches: readonly AuditBatch[], events: number): Promise<Cost> {
  const cpu = process.cpuUsage()
  const servers = stores.map((s) => treeCpuMicros(s.serverPid ?? undefined))
  const started = performance.now()
  await Promise.all(stores.map(async (store, i) => {
    for (let b = i; b < batches.length; b += stores.length) await store.sink.write(batches[b]!)
  }))
  const seconds = (performance.now() - started) / 1000
  const used = process.cpuUsage(cpu)
  // the backends' CPU together; unknown if any one's is
  const serverUsed = stores.map((s, i) => {
    const before = servers[i]!
    const after = treeCpuMicros(s.serverPid ?? undefined)
    return before === null || after === null ? null : after - before
  })
  return {
    loop: (used.user + used.system) / events,
    store: serverUsed.includes(null) ? null : serverUsed.reduce((sum: number, u) => sum + u!, 0) / events,
    rate: events / seconds,
  }
}

/** direct ingest into a fresh SQLite file in-process, `dropIndexes` dropped first */
async function directIngestSqlite (batches: readonly AuditBatch[], dropIndexes: string[] = []): Promise<Cost> {
  const { dir, file } = await freshSqliteFile()
  const db = openSqliteDatabase(file, { checkpointPages: AUDIT_WRITER_CHECKPOINT_PAGES })
  for (const index of dropIndexes) db.exec(`DROP INDEX ${index}`)
  const sink = new SqliteAuditSink(db, { ownsDb: true })
  try { return await directIngest([{ sink, serverPid: null }], batches, EVENTS) } finally { await sink.close(); await rm(dir, { recursive: true, force: true }) }
}

/**
 * SQLite's floor for one row per event: the values already parsed, one prepared INSERT each into
 * a table with audit_events' columns and nothing else (no key, index, trigger or rollup).
 */
async function bareSqliteInserts (batches: readonly AuditBatch[]): Promise<Cost> {
  const { dir, file } = await freshSqliteFile()
  const db = openSqliteDatabase(file, { checkpointPages: AUDIT_WRITER_CHECKPOINT_PAGES })
  try {
    db.exec('CREATE TABLE bare_events AS SELECT * FROM audit_events WHERE 0')
    const insert = db.prepare(`INSERT INTO bare_events (${AUDIT_COLUMNS.join(', ')}) VALUES (${AUDIT_COLUMNS.map(() => '?').join(', ')})`)
    const write = db.transaction((rows: ReadonlyArray<Array<string | null>>) => { for (const values of rows) insert.run(values) })
    const parsed = batches.map((b) => rowsOf(rowsText(b)).map(parseCopyRow))
    const cpu = process.cpuUsage()
    const started = performance.now()
    for (const rows of parsed) write.immediate(rows)
    const seconds = (performance.now() - started) / 1000
    const used = process.cpuUsage(cpu)
    return { loop: (used.user + used.system) / EVENTS, store: null, rate: EVENTS / seconds }
  } finally {
    db.close()
    await rm(dir, { recursive: true, force: true })
  }
}

/** direct ingest on a fresh database, `drop` run first, through `sinks` sinks */
async function directIngestPostgres (batches: readonly AuditBatch[], drop: string[] = [], sinks = 1): Promise<Cost> {
  const db = await freshPostgres(drop, sinks)
  try { return await directIngest(db.stores, batches, EVENTS) } finally { await db.done() }
}

function median (xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
}

function micros (n: number | null): string {
  return n === null || Number.isNaN(n) ? '    -' : n.toFixed(2).padStart(6)
}

function report (name: string, runs: Cost[], storeLabel: string): void {
  console.log(`${name.padEnd(44)} ${Math.round(median(runs.map((r) => r.rate))).toLocaleString('en-US').padStart(9)} events/s  ` +
    `cpu µs/event: event loop ${micros(median(runs.map((r) => r.loop)))}, ${storeLabel} ${micros(runs[0]!.store === null ? null : median(runs.map((r) => r.store!)))}` +
    `   (rates: ${runs.map((r) => Math.round(r.rate)).join(', ')})` +
    (runs[0]!.stall === undefined ? '' : `  event loop held up: p99 ${median(runs.map((r) => r.stall!.p99)).toFixed(2)} ms, max ${median(runs.map((r) => r.stall!.max)).toFixed(2)} ms`))
}

async function main (): Promise<void> {
  console.log(`audit-write: ${EVENTS.toLocaleString('en-US')} events, pipeline at ${RATE.toLocaleString('en-US')}/s in turns of up to ${TURN}, batches of up to ${BATCH} or every ${FLUSH_MS} ms, ${cpus().length} × ${cpus()[0]!.model}, median of ${ROUNDS}`)
  const events = makeEvents(EVENTS)
  const batches = encodeBatches(events)

  const scenarios: Array<[string, string, () => Promise<Cost>]> = [
    // what the pacing loop itself costs the event loop: subtract it from the two rows below
    ['pacing loop alone (nothing recorded)', 'store', async () => await throughPipeline({ async write () {}, async close () {} }, null, events, false)],
    ['pipeline → PostgreSQL (as a worker runs it)', 'postgres', async () => {
      const db = await freshPostgres()
      const [store] = db.stores
      try { return await throughPipeline(store!.sink, store!.serverPid, events) } finally { await db.done() }
    }],
    ['pipeline → SQLite on its writer thread', 'sqlite thread', async () => {
      const { dir, file } = await freshSqliteFile()
      const sink = await openThreadedSqliteAuditSink(file)
      try { return await throughPipeline(sink, null, events) } finally { await sink.close(); await rm(dir, { recursive: true, force: true }) }
    }],
    ['direct ingest, PostgreSQL as shipped', 'postgres', async () => await directIngestPostgres(batches)],
    ['direct ingest, PostgreSQL as shipped, two sinks', 'postgres', async () => await directIngestPostgres(batches, [], 2)],
    ...SECONDARY_INDEXES.map((index): [string, string, () => Promise<Cost>] => [`direct ingest, PostgreSQL without ${index.replace('audit_events_', '').replace('_idx', '')}`, 'postgres', async () => await directIngestPostgres(batches, dropIndexes([index]))]),
    ['direct ingest, PostgreSQL, no secondary index', 'postgres', async () => await directIngestPostgres(batches, dropIndexes(SECONDARY_INDEXES))],
    // the floor of one row per event: the primary key that dedupes replays, then not even that
    ['direct ingest, PostgreSQL, primary key only, no rollup', 'postgres', async () => await directIngestPostgres(withoutCells(batches), dropIndexes(SECONDARY_INDEXES))],
    ['direct ingest, PostgreSQL, bare table, no rollup', 'postgres', async () => await directIngestPostgres(withoutCells(batches), [...dropIndexes(SECONDARY_INDEXES), DROP_PRIMARY_KEY])],
    ['direct ingest, SQLite as shipped (in-process)', 'sqlite', async () => await directIngestSqlite(batches)],
    ['direct ingest, SQLite, no secondary index', 'sqlite', async () => await directIngestSqlite(batches, SECONDARY_INDEXES)],
    ['direct ingest, SQLite, primary key only, no rollup', 'sqlite', async () => await directIngestSqlite(withoutCells(batches), SECONDARY_INDEXES)],
    ['SQLite bare table, values already parsed', 'sqlite', async () => await bareSqliteInserts(batches)],
  ]
  // BENCH_ONLY=<regex>: only the scenarios whose name matches
  const only = process.env.BENCH_ONLY === undefined ? null : new RegExp(process.env.BENCH_ONLY)
  if (only !== null) scenarios.splice(0, scenarios.length, ...scenarios.filter(([name]) => only.test(name)))
  // rounds interleave the scenarios, so a burst of load elsewhere spreads over all of them
  const runs: Cost[][] = scenarios.map(() => [])
  for (let round = 0; round < ROUNDS; round++) {
    for (let s = 0; s < scenarios.length; s++) runs[s]!.push(await scenarios[s]![2]())
  }
  for (let s = 0; s < scenarios.length; s++) report(scenarios[s]![0], runs[s]!, scenarios[s]![1])
  console.log('direct ingest: the event loop column is the sink\'s own CPU (driver, or SQLite\'s parse and inserts in-process)')
}

await main()
