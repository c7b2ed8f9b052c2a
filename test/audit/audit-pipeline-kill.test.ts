// What survives a worker killed with SIGKILL: the log it left is shipped by the next pipeline
// exactly once, two pipelines starting together split the leftovers without shipping any file
// twice, and nothing is lost that was in the log when the kill came (every event whose
// event-loop turn had ended).
//
// The killed processes run this same file as a fixture (RELAYKEY_AUDIT_FIXTURE set), so the
// fixture is type-checked with the tests and the runner never mistakes it for a test file.
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import pino from 'pino'
import postgres from 'postgres'
import { AuditPipeline } from '../../src/audit/audit-pipeline.js'
import type { AuditSink } from '../../src/audit/audit-sink.js'
import { openPostgresAuditSink } from '../../src/audit/postgres-audit-sink.js'
import { openSqliteAuditSink } from '../../src/audit/sqlite-audit-sink.js'
import { freePort } from '../helpers/ports.js'
import { startThrowawayPostgres } from '../helpers/throwaway-postgres.js'
import { plainEvent } from './audit-fixtures.js'

const logger = pino({ level: process.env.RELAYKEY_TEST_LOG ?? 'silent' })
const FIXTURE = process.env.RELAYKEY_AUDIT_FIXTURE
/**
 * Events per second the streaming fixture records: a busy worker. Above what the sink sustains
 * the queue fills and the drain ships from the log instead, which a kill cannot take either.
 */
const RATES = { sqlite: 10_000, postgres: 5_000 }

const event = plainEvent

// ---- the fixture: a worker that is about to be killed ----

/** pipelines on a PostgreSQL that refuses connections: everything stays in the log */
async function logThenWait (): Promise<void> {
  const sink = openPostgresAuditSink(`postgres://relaykey_app@127.0.0.1:${await freePort()}/postgres`)
  const writers = []
  for (let w = 0; w < Number(process.env.WRITERS); w++) {
    const pipeline = new AuditPipeline({ sink, logDir: process.env.LOG_DIR!, writerId: `w${w}-${randomUUID()}`, logger })
    await pipeline.start()
    const count = Number(process.env.EVENTS)
    for (let i = 0; i < count; i++) {
      pipeline.record(event(i))
      if (i % 200 === 199) await sleep(1)
    }
    await pipeline.flush()
    const stats = pipeline.stats()
    assert.ok(!stats.sinkUp && stats.written === 0 && stats.dropped === 0 && stats.logBytes > 0, JSON.stringify(stats))
    writers.push({ id: pipeline.writerId, count })
  }
  process.send!({ writers })
}

/**
 * Records RATE events a second. The last event of each burst has a waiter, as a request's answer
 * does: when the log has it, the count goes to a file that a kill cannot lose (page cache, not
 * the process). Everything counted there was acknowledged as logged.
 */
async function streamUntilKilled (): Promise<void> {
  const pipeline = new AuditPipeline({ sink: openSink(process.env.DB!), logDir: process.env.LOG_DIR!, writerId: process.env.WRITER_ID!, logger })
  await pipeline.start()
  const fd = openSync(process.env.COUNTER_FILE!, 'w')
  const counter = new Float64Array(2)
  const started = Date.now()
  let recorded = 0
  process.send!('recording')
  for (;;) {
    const due = Math.floor((Date.now() - started) * Number(process.env.RATE) / 1000)
    while (recorded < due - 1) pipeline.record(event(recorded++))
    if (recorded < due) {
      const logged = ++recorded
      pipeline.record(event(logged - 1), {
        auditLogged () {
          counter[0] = logged
          counter[1] = Date.now() - started
          writeSync(fd, Buffer.from(counter.buffer), 0, 16, 0)
        },
      })
    }
    await sleep(1)
  }
}

if (FIXTURE !== undefined) {
  // the test process going away closes the IPC channel: do not outlive it
  process.on('disconnect', () => process.exit(1))
  await (FIXTURE === 'log' ? logThenWait() : streamUntilKilled())
  setInterval(() => {}, 60_000)
} else {
  describe('audit pipeline after SIGKILL', () => {
    it('ships the log of a killed worker exactly once, in order', async (t) => {
      const dir = tempDir(t)
      const [{ id, count }] = await logAndKill(dir, 1, 3_000)
      assert.ok(readdirSync(join(dir, 'log')).some((f) => f.includes(id!)), 'the killed worker left its log')
      const db = join(dir, 'relaykey.db')
      const sink = openSqliteAuditSink(db)
      const pipeline = new AuditPipeline({ sink, logDir: join(dir, 'log'), logger })
      await pipeline.start()
      await drained([pipeline])
      await pipeline.close()
      await sink.close()
      // written counts what the sink acknowledged: a file shipped twice would count twice
      assert.equal(pipeline.stats().written, count)
      assert.deepEqual(readdirSync(join(dir, 'log')), [])
      assertPrefix(db, id!, count!, count!)
    })

    it('two pipelines starting together ship each leftover file once', async (t) => {
      const dir = tempDir(t)
      const writers = [...await logAndKill(dir, 3, 1_500), ...await logAndKill(dir, 3, 700)]
      const total = writers.reduce((sum, w) => sum + w.count, 0)
      const db = join(dir, 'relaykey.db')
      const sinks = [openSqliteAuditSink(db), openSqliteAuditSink(db)]
      const pipelines = sinks.map((sink) => new AuditPipeline({ sink, logDir: join(dir, 'log'), logger }))
      await Promise.all(pipelines.map((p) => p.start()))
      await drained(pipelines)
      await Promise.all(pipelines.map((p) => p.close()))
      await Promise.all(sinks.map((s) => s.close()))
      const written = pipelines.map((p) => p.stats().written)
      t.diagnostic(`shipped by each pipeline: ${written.join(' + ')} = ${total}`)
      assert.equal(written[0]! + written[1]!, total)
      for (const { id, count } of writers) assertPrefix(db, id, count, count)
      assert.deepEqual(readdirSync(join(dir, 'log')), [])
    })

    for (const store of ['sqlite', 'postgres'] as const) {
      it(`loses nothing the log had acknowledged when the kill came (${store}, default settings)`, async (t) => {
        const pg = store === 'postgres' ? await startThrowawayPostgres() : null
        t.after(() => pg?.destroy())
        for (let run = 0; run < 5; run++) {
          const dir = tempDir(t)
          const db = pg === null ? join(dir, 'relaykey.db') : `postgres://relaykey_app@127.0.0.1:${pg.port}/postgres`
          await killWhileRecording(t, dir, db, `victim-${run}`, RATES[store])
        }
      })
    }
  })
}

/**
 * Runs the streaming fixture, kills it at a random moment, lets a new pipeline ship the log it
 * left, and checks that every event the log had acknowledged is stored, once, in order.
 */
async function killWhileRecording (t: TestContext, dir: string, db: string, writerId: string, rate: number): Promise<void> {
  const counterFile = join(dir, 'logged')
  const child = startFixture('stream', { DB: db, LOG_DIR: join(dir, 'log'), COUNTER_FILE: counterFile, WRITER_ID: writerId, RATE: String(rate) })
  await once(child, 'message')
  await sleep(1_000 + Math.random() * 1_000)
  child.kill('SIGKILL')
  await once(child, 'exit')
  const counterBytes = readFileSync(counterFile)
  const logged = counterBytes.readDoubleLE(0)
  const elapsed = counterBytes.readDoubleLE(8)
  const sink = openSink(db)
  const next = new AuditPipeline({ sink, logDir: join(dir, 'log'), logger })
  await next.start()
  await drained([next])
  await next.close()
  await sink.close()
  // at most a turn's worth past the count: recorded, not yet acknowledged, possibly logged
  const stored = await storedPrefix(db, writerId, logged + rate)
  t.diagnostic(`${writerId}: ${logged} acknowledged as logged in ${elapsed} ms, ${stored} stored`)
  assert.ok(stored >= logged, `${logged - stored} events acknowledged as logged are not stored`)
}

function openSink (db: string): AuditSink {
  return db.startsWith('postgres:') ? openPostgresAuditSink(db) : openSqliteAuditSink(db)
}

/** assertPrefix for either store; PostgreSQL's insertion order is xmin, the inserting transaction */
async function storedPrefix (db: string, writerId: string, recorded: number): Promise<number> {
  if (!db.startsWith('postgres:')) return assertPrefix(db, writerId, recorded, null)
  const sql = postgres(db, { max: 1, onnotice: () => {} })
  try {
    const rows = await sql`SELECT seq::int AS seq FROM audit_events WHERE writer_id = ${writerId} ORDER BY xmin::text::bigint, seq`
    rows.forEach((row, i) => assert.equal(row.seq, i + 1, `${writerId}: row ${i + 1} has seq ${row.seq}`))
    assert.ok(rows.length <= recorded, `${writerId}: ${rows.length} rows, only ${recorded} recorded`)
    return rows.length
  } finally {
    await sql.end()
  }
}

function tempDir (t: { after (fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'relaykey-audit-kill-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function startFixture (mode: string, env: Record<string, string>): ChildProcess {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, RELAYKEY_AUDIT_FIXTURE: mode }
  // the child is no test file: keep node:test from reporting to us through it
  delete childEnv.NODE_TEST_CONTEXT
  return fork(fileURLToPath(import.meta.url), [], { env: childEnv, execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

/** runs the log fixture with `writers` pipelines, waits until all is on disk, and kills it */
async function logAndKill (dir: string, writers: number, events: number): Promise<Array<{ id: string; count: number }>> {
  const child = startFixture('log', { LOG_DIR: join(dir, 'log'), WRITERS: String(writers), EVENTS: String(events) })
  const [message] = await once(child, 'message') as [{ writers: Array<{ id: string; count: number }> }]
  child.kill('SIGKILL')
  await once(child, 'exit')
  return message.writers
}

async function drained (pipelines: AuditPipeline[]): Promise<void> {
  const deadline = Date.now() + 30_000
  for (;;) {
    await Promise.all(pipelines.map((p) => p.flush()))
    if (pipelines.every((p) => p.stats().logFiles === 0 && p.stats().queueDepth === 0)) return
    if (Date.now() > deadline) throw new Error(`not drained: ${JSON.stringify(pipelines.map((p) => p.stats()))}`)
    await sleep(20)
  }
}

/**
 * The writer's rows are exactly seq 1..n, each once, stored in seq order (rowid), n at most
 * `recorded` (or exactly `expected`). Returns n.
 */
function assertPrefix (file: string, writerId: string, recorded: number, expected: number | null): number {
  const db = new Database(file, { readonly: true })
  try {
    const rows = db.prepare('SELECT seq FROM audit_events WHERE writer_id = ? ORDER BY rowid').all(writerId) as Array<{ seq: number }>
    rows.forEach((row, i) => assert.equal(row.seq, i + 1, `${writerId}: row ${i + 1} has seq ${row.seq}`))
    assert.ok(rows.length <= recorded, `${writerId}: ${rows.length} rows, only ${recorded} recorded`)
    if (expected !== null) assert.equal(rows.length, expected)
    return rows.length
  } finally {
    db.close()
  }
}
