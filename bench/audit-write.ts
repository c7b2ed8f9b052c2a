// Audit sink write throughput, each scenario on a fresh store: PostgresAuditSink as it runs
// (COPY straight into audit_events), its staging path alone (COPY into a temporary table, then
// INSERT … ON CONFLICT DO NOTHING), a replay (every event already stored: the fallback path), the
// plain alternative (one multi-row parameterised INSERT per batch), and SqliteAuditSink — as it
// is, on files without the INSERT OR REPLACE guard trigger or without secondary indexes, which
// prices what each costs an insert, on the table alone (the least a stored row can cost), and
// with SQLite's default checkpoint pace (every 1,000 WAL pages) instead of the sink's. Also the
// chain hash's own CPU per event, which the pipeline pays before a sink sees an event.
// Run: npx tsc -p . && node dist/bench/audit-write.js [events] [batch sizes, comma-separated]
// PostgreSQL: RELAYKEY_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres);
// the sink logs in as relaykey_app, which needs local trust auth or a password in that URL.
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import postgres from 'postgres'
import { toChained, type AuditEvent, type ChainedAuditEvent } from '../src/audit/audit-event.js'
import type { AuditSink } from '../src/audit/audit-sink.js'
import { chainHash, GENESIS_HASH } from '../src/audit/audit-chain.js'
import { AUDIT_COLUMNS } from '../src/audit/audit-copy-text.js'
import { openPostgresAuditSink } from '../src/audit/postgres-audit-sink.js'
import { SqliteAuditSink } from '../src/audit/sqlite-audit-sink.js'
import { AUDIT_WRITER_CHECKPOINT_PAGES, openSqliteDatabase } from '../src/store/sqlite/schema.js'
import { runMigrations } from '../src/store/postgres/migrate.js'
import { createTestDatabase } from '../test/helpers/postgres.js'
import { treeCpuMicros } from './lib/process-cpu.js'

const EVENTS = Number(process.argv[2] ?? 200_000)
const BATCHES = (process.argv[3] ?? '1000,2000,5000').split(',').map(Number)
const WRITERS = 4
const SQLITE_SECONDARY_INDEXES = ['audit_events_key_ts_idx', 'audit_events_customer_ts_idx', 'audit_events_partner_ts_idx', 'audit_events_outcome_ts_idx']
const ROUNDS = 3

/** A realistic mix: mostly forwarded and keyed, some refusals without a key, 4 writers. */
function makeEvents (count: number): ChainedAuditEvent[] {
  const writers = Array.from({ length: WRITERS }, () => ({ id: randomUUID(), seq: 0, prev: GENESIS_HASH }))
  const start = Date.now() - count
  const events: ChainedAuditEvent[] = []
  for (let i = 0; i < count; i++) {
    const refused = i % 10 === 0
    const event: AuditEvent = {
      id: randomUUID(),
      ts: start + i,
      request_id: randomUUID(),
      key_id: refused ? null : `key_${(i % 500).toString(36).padStart(8, '0')}`,
      customer: refused ? null : `customer-${i % 200}`,
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
    }
    const writer = writers[i % WRITERS]
    const hash = chainHash(writer.prev, event)
    // built as the pipeline builds it: a spread copy has a slower shape (chainHash takes 2.4× as long)
    events.push(toChained(event, writer.id, ++writer.seq, writer.prev, hash))
    writer.prev = hash
  }
  return events
}

/** the alternative to COPY: every batch as one INSERT with 26 parameters per row */
function insertSink (url: string): AuditSink {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  const columns = [...AUDIT_COLUMNS]
  return {
    async write (batch) {
      // the protocol caps a statement at 65,535 parameters: 2,000 rows of 26 at a time
      for (let i = 0; i < batch.length; i += 2000) {
        const rows = batch.slice(i, i + 2000).map((e) => ({ ...e, ts: new Date(e.ts) }))
        await sql`INSERT INTO audit_events ${sql(rows, columns)} ON CONFLICT DO NOTHING`
      }
    },
    async close () { await sql.end() },
  }
}

interface Run {
  rate: number
  /** CPU µs per event: this process (encoding, driver) and the PostgreSQL backend serving it */
  clientCpu: number
  serverCpu: number | null
}

// On this small shared machine events/s moves with whatever else runs; CPU per event far less.
async function timeWrites (store: Store, events: readonly ChainedAuditEvent[], batch: number): Promise<Run> {
  const cpu = process.cpuUsage()
  const server = treeCpuMicros(store.serverPid ?? undefined)
  const started = performance.now()
  for (let i = 0; i < events.length; i += batch) await store.sink.write(events.slice(i, i + batch))
  const seconds = (performance.now() - started) / 1000
  const used = process.cpuUsage(cpu)
  const serverAfter = treeCpuMicros(store.serverPid ?? undefined)
  return {
    rate: events.length / seconds,
    clientCpu: (used.user + used.system) / events.length,
    serverCpu: server === null || serverAfter === null ? null : (serverAfter - server) / events.length,
  }
}

interface Store { sink: AuditSink, serverPid: number | null, done (): Promise<void> }

async function freshPostgres (kind: 'direct' | 'staging' | 'insert'): Promise<Store> {
  const db = await createTestDatabase()
  await runMigrations(db.url)
  const app = new URL(db.url)
  app.username = 'relaykey_app'
  const sink = kind === 'insert'
    ? insertSink(app.toString())
    : openPostgresAuditSink(app.toString(), { directCopy: kind === 'direct' })
  // partitions and the staging table exist before the clock starts, as in a running process
  await sink.write(makeEvents(1))
  const admin = postgres(db.url, { max: 1, onnotice: () => {} })
  const [backend] = await admin<Array<{ pid: number }>>`
    SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND usename = 'relaykey_app'`
  await admin.end()
  return { sink, serverPid: backend?.pid ?? null, async done () { await sink.close(); await db.drop() } }
}

/**
 * `drop`: SQL run on the fresh file before the clock starts, to price what it removes;
 * `pragma`: a setting of the sink's own connection (checkpoint policy, for one)
 */
async function freshSqlite (drop = '', pragma = ''): Promise<Store> {
  const dir = await mkdtemp(join(tmpdir(), 'relaykey-bench-'))
  const db = openSqliteDatabase(join(dir, 'relaykey.db'), { checkpointPages: AUDIT_WRITER_CHECKPOINT_PAGES })
  if (drop !== '') db.exec(drop)
  if (pragma !== '') db.pragma(pragma)
  const sink = new SqliteAuditSink(db, { ownsDb: true })
  // embedded: the store works inside this process, so client CPU is all of it
  return { sink, serverPid: null, async done () { await sink.close(); await rm(dir, { recursive: true, force: true }) } }
}

/** CPU per event of chainHash over events already made: what tamper evidence costs a request at least */
function chainHashMicros (events: readonly ChainedAuditEvent[]): number {
  const rounds: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.cpuUsage()
    let prev = GENESIS_HASH
    for (const event of events) prev = chainHash(prev, event)
    const used = process.cpuUsage(start)
    rounds.push((used.user + used.system) / events.length)
  }
  return median(rounds)
}

function median (xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
}

function micros (n: number | null): string {
  return n === null ? '    -' : n.toFixed(1).padStart(5)
}

function fmt (n: number): string {
  return Math.round(n).toLocaleString('en-US').padStart(9)
}

async function main (): Promise<void> {
  console.log(`audit-write: ${EVENTS.toLocaleString('en-US')} events, ${WRITERS} writers, ${cpus().length} × ${cpus()[0].model}, median of ${ROUNDS}`)
  const hashStart = performance.now()
  const events = makeEvents(EVENTS)
  console.log(`making the events incl. chainHash: ${fmt(EVENTS / ((performance.now() - hashStart) / 1000))} events/s (pipeline-side cost, not in the figures below)`)
  console.log(`the chain hash alone (canonical JSON + SHA-256): ${micros(chainHashMicros(events))} µs/event of CPU, median of ${ROUNDS}`)

  const scenarios: Array<[string, () => Promise<Store>, boolean]> = [
    ['postgres sink (direct COPY)     ', () => freshPostgres('direct'), false],
    ['postgres sink, staging only     ', () => freshPostgres('staging'), false],
    ['postgres sink, replay (staging) ', () => freshPostgres('direct'), true],
    ['postgres multi-row INSERT       ', () => freshPostgres('insert'), false],
    ['sqlite sink                     ', () => freshSqlite(), false],
    ['sqlite, no REPLACE-guard trigger', () => freshSqlite('DROP TRIGGER audit_events_no_replace'), false],
    ['sqlite, no (key_id, ts) index   ', () => freshSqlite('DROP INDEX audit_events_key_ts_idx'), false],
    ['sqlite, no (customer, ts) index ', () => freshSqlite('DROP INDEX audit_events_customer_ts_idx'), false],
    ['sqlite, no secondary indexes    ', () => freshSqlite(SQLITE_SECONDARY_INDEXES.map((i) => `DROP INDEX ${i};`).join(' ')), false],
    // the least a row can cost in this file: the table alone, nothing derived from it
    ['sqlite, table alone (floor)     ', () => freshSqlite([...SQLITE_SECONDARY_INDEXES.map((i) => `DROP INDEX ${i};`), 'DROP TRIGGER audit_events_no_replace;'].join(' ')), false],
    ['sqlite, checkpoint every 1000 pg', () => freshSqlite('', 'wal_autocheckpoint = 1000'), false],
  ]
  for (const batch of BATCHES) {
    // rounds interleave the scenarios, so a burst of load elsewhere spreads over all of them
    const runs: Run[][] = scenarios.map(() => [])
    for (let round = 0; round < ROUNDS; round++) {
      for (let s = 0; s < scenarios.length; s++) {
        const [, open, replay] = scenarios[s]
        const store = await open()
        try {
          if (replay) await timeWrites(store, events, batch)
          runs[s].push(await timeWrites(store, events, batch))
        } finally {
          await store.done()
        }
      }
    }
    for (let s = 0; s < scenarios.length; s++) {
      const rates = runs[s].map((r) => r.rate)
      const server = runs[s].map((r) => r.serverCpu).filter((c) => c !== null)
      console.log(`batch ${String(batch).padStart(5)}  ${scenarios[s][0]} ${fmt(median(rates))} events/s  ` +
        `cpu µs/event: node ${micros(median(runs[s].map((r) => r.clientCpu)))}, postgres ${micros(server.length === 0 ? null : median(server))}` +
        `   (runs: ${rates.map((r) => Math.round(r)).join(', ')})`)
    }
  }
}

await main()
