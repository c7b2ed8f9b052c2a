// The audit pipeline with real sinks (a SQLite file, a private PostgreSQL): after normal flushes,
// a full queue, close(), and a log at its size bound, every recorded event is stored exactly
// once, in seq order — or, past the bound, counted as dropped.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import pino from 'pino'
import postgres from 'postgres'
import { verifyChains } from '../../src/audit/audit-chain.js'
import { readPostgresAuditBlocks, readPostgresAuditEvents, readSqliteAuditBlocks, readSqliteAuditEvents } from '../../src/audit/audit-event-readers.js'
import { AuditPipeline, type AuditPipelineOptions } from '../../src/audit/audit-pipeline.js'
import { openPostgresAuditSink } from '../../src/audit/postgres-audit-sink.js'
import { openSqliteAuditSink, SqliteAuditSink } from '../../src/audit/sqlite-audit-sink.js'
import { readLogChunk } from '../../src/audit/log-reader.js'
import { rowSeq } from '../../src/audit/audit-copy-text.js'
import { openSqliteDatabase } from '../../src/store/sqlite/schema.js'
import { startThrowawayPostgres, type ThrowawayPostgres } from '../helpers/throwaway-postgres.js'
import { plainEvent } from './audit-fixtures.js'

const logger = pino({ level: process.env.RELAYKEY_TEST_LOG ?? 'silent' })

const event = plainEvent

function tempDir (t: { after (fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'relaykey-audit-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function until (what: string, done: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** records `count` events `perTick` at a time, letting the loop run in between */
async function recordSpread (pipeline: AuditPipeline, count: number, perTick: number, tickMs = 1): Promise<void> {
  for (let i = 0; i < count; i += perTick) {
    for (let j = i; j < Math.min(count, i + perTick); j++) pipeline.record(event(j))
    await sleep(tickMs)
  }
}

/**
 * Every writer's events 1..count, each once, chaining correctly; and stored in seq order:
 * `order` (SQLite rowid, PostgreSQL xmin) never goes down as seq goes up.
 */
function assertComplete (rows: Array<{ writer_id: string; seq: number; order: number }>, writers: Map<string, number>): void {
  const byWriter = new Map<string, Array<{ seq: number; order: number }>>()
  for (const row of rows) byWriter.set(row.writer_id, [...(byWriter.get(row.writer_id) ?? []), row])
  assert.deepEqual([...byWriter.keys()].sort(), [...writers.keys()].sort())
  for (const [writer, count] of writers) {
    const mine = byWriter.get(writer)!.sort((a, b) => a.seq - b.seq)
    assert.equal(mine.length, count, `writer ${writer}: ${mine.length} rows for ${count} events`)
    mine.forEach((row, i) => assert.equal(row.seq, i + 1, `writer ${writer}: seq ${i + 1} missing or repeated`))
    for (let i = 1; i < mine.length; i++) {
      assert.ok(mine[i]!.order >= mine[i - 1]!.order, `writer ${writer}: seq ${i + 1} stored before seq ${i}`)
    }
  }
}

async function assertSqlite (file: string, writers: Map<string, number>): Promise<void> {
  const db = new Database(file, { readonly: true })
  try {
    assertComplete(db.prepare('SELECT writer_id, seq, rowid AS "order" FROM audit_events').all() as any, writers)
    assert.equal((await verifyChains(readSqliteAuditEvents(db), readSqliteAuditBlocks(db))).ok, true)
  } finally {
    db.close()
  }
}

async function assertPostgres (url: string, writers: Map<string, number>): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    // xmin: the transaction that inserted the row; a replayed duplicate is skipped, not rewritten
    const rows = await sql`SELECT writer_id, seq::int AS seq, xmin::text::bigint AS "order" FROM audit_events`
    assertComplete(rows.map((r) => ({ writer_id: r.writer_id, seq: r.seq, order: Number(r.order) })), writers)
    assert.equal((await verifyChains(readPostgresAuditEvents(sql), await readPostgresAuditBlocks(sql))).ok, true)
  } finally {
    await sql.end()
  }
}

/** a real sink on a database that has been closed: every write rejects, as on a broken disk */
function brokenSink (file: string): SqliteAuditSink {
  const db = openSqliteDatabase(file)
  const sink = new SqliteAuditSink(db)
  db.close()
  return sink
}

function sqlitePipeline (dir: string, options: Partial<AuditPipelineOptions> = {}): { pipeline: AuditPipeline; file: string } {
  const file = join(dir, 'relaykey.db')
  const sink = options.sink ?? openSqliteAuditSink(file)
  const pipeline = new AuditPipeline({ logDir: join(dir, 'log'), logger, ...options, sink })
  return { pipeline, file }
}

describe('audit pipeline with SQLite', () => {
  it('stores every event exactly once, in seq order, through normal flushes', async (t) => {
    const dir = tempDir(t)
    const { pipeline, file } = sqlitePipeline(dir)
    await pipeline.start()
    t.after(() => pipeline.close())
    await recordSpread(pipeline, 12_345, 50)
    await until('all written', () => pipeline.stats().written === 12_345)
    const stats = pipeline.stats()
    assert.deepEqual({ ...stats, logBytes: 0 }, { queueDepth: 0, replayedEvents: 0, logBytes: 0, logFiles: 1, logWriteFailures: 0, written: 12_345, dropped: 0, quarantined: 0, sinkUp: true })
    assert.ok(stats.logBytes > 12_345 * 150, 'every event is in the log')
    await pipeline.close()
    // all of it shipped: the log is gone
    assert.deepEqual({ logBytes: pipeline.stats().logBytes, logFiles: pipeline.stats().logFiles }, { logBytes: 0, logFiles: 0 })
    assert.deepEqual(readdirSync(join(dir, 'log')), [])
    await assertSqlite(file, new Map([[pipeline.writerId, 12_345]]))
  })

  it('ships from the log when the queue is full, drops nothing, and keeps the order', async (t) => {
    const dir = tempDir(t)
    const { pipeline, file } = sqlitePipeline(dir, { maxQueued: 100, batchSize: 10, segmentBytes: 20_000 })
    await pipeline.start()
    // one synchronous burst: nothing drains in between, so the queue overflows and is let go
    for (let i = 0; i < 1000; i++) pipeline.record(event(i))
    assert.equal(pipeline.stats().queueDepth, 0)
    await pipeline.flush()
    assert.equal(pipeline.stats().replayedEvents, 1000)
    // and back to memory once it has caught up
    await recordSpread(pipeline, 500, 50)
    await pipeline.flush()
    assert.equal(pipeline.stats().replayedEvents, 1000)
    await pipeline.close()
    assert.equal(pipeline.stats().dropped, 0)
    assert.equal(pipeline.stats().logFiles, 0)
    assert.deepEqual(readdirSync(join(dir, 'log')), [])
    await assertSqlite(file, new Map([[pipeline.writerId, 1500]]))
  })

  it('close() writes out everything still queued, partial batches included', async (t) => {
    const dir = tempDir(t)
    // an interval far beyond the test: only close() can flush the last partial batch
    const { pipeline, file } = sqlitePipeline(dir, { flushIntervalMs: 3_600_000 })
    await pipeline.start()
    for (let i = 0; i < 2_500; i++) pipeline.record(event(i))
    await pipeline.close()
    assert.equal(pipeline.stats().written, 2_500)
    assert.equal(pipeline.stats().queueDepth, 0)
    await assertSqlite(file, new Map([[pipeline.writerId, 2_500]]))
  })

  it('close() with the sink down leaves everything in the log, in seq order', async (t) => {
    const dir = tempDir(t)
    const { pipeline } = sqlitePipeline(dir, { sink: brokenSink(join(dir, 'relaykey.db')), segmentBytes: 50_000 })
    await pipeline.start()
    await recordSpread(pipeline, 1_500, 100)
    await pipeline.close()
    const stats = pipeline.stats()
    assert.deepEqual({ ...stats, logBytes: 0, logFiles: 0 }, { queueDepth: 0, replayedEvents: 0, logBytes: 0, logFiles: 0, logWriteFailures: 0, written: 0, dropped: 0, quarantined: 0, sinkUp: false })
    const names = readdirSync(join(dir, 'log')).sort()
    assert.ok(names.length > 1, 'the log rolled over to several segments')
    const seqs: number[] = []
    for (const name of names) {
      const chunk = await readLogChunk(join(dir, 'log', name), pipeline.writerId, 0, 10_000)
      assert.equal(chunk.damaged, 0)
      seqs.push(...chunk.rows.map(rowSeq))
    }
    assert.deepEqual(seqs, Array.from({ length: 1_500 }, (_, i) => i + 1))
  })

  it('past maxLogBytes, events the log cannot take and the sink did not get are dropped and counted, never silently', async (t) => {
    const dir = tempDir(t)
    const file = join(dir, 'relaykey.db')
    const { pipeline } = sqlitePipeline(dir, { sink: brokenSink(file), maxLogBytes: 50_000, batchSize: 10 })
    await pipeline.start()
    await recordSpread(pipeline, 1_000, 20)
    await pipeline.close()
    const stats = pipeline.stats()
    assert.ok(stats.logWriteFailures > 0 && stats.logBytes > 0, JSON.stringify(stats))
    assert.equal(stats.dropped, stats.logWriteFailures)
    assert.ok(stats.logBytes <= 50_000)
    let logged = 0
    for (const name of readdirSync(join(dir, 'log'))) logged += (await readLogChunk(join(dir, 'log', name), pipeline.writerId, 0, 10_000)).rows.length
    assert.equal(logged + stats.dropped, 1_000)
  })
})

describe('audit pipeline with PostgreSQL', () => {
  let pg: ThrowawayPostgres
  before(async () => { pg = await startThrowawayPostgres() })
  after(() => pg.destroy())

  it('stores every event exactly once, in seq order, from two writers, through normal flushes', async (t) => {
    const dir = tempDir(t)
    // the application role: INSERT and SELECT on audit_events, nothing more
    const appUrl = `postgres://relaykey_app@127.0.0.1:${pg.port}/postgres`
    const sinks = [openPostgresAuditSink(appUrl), openPostgresAuditSink(appUrl)]
    t.after(() => Promise.all(sinks.map((s) => s.close())))
    const pipelines = sinks.map((sink) => new AuditPipeline({ sink, logDir: join(dir, 'log'), logger }))
    await Promise.all(pipelines.map((p) => p.start()))
    await Promise.all([recordSpread(pipelines[0]!, 10_000, 40), recordSpread(pipelines[1]!, 7_000, 30)])
    await Promise.all(pipelines.map((p) => p.close()))
    for (const p of pipelines) assert.equal(p.stats().replayedEvents + p.stats().dropped, 0)
    await assertPostgres(pg.url, new Map([[pipelines[0]!.writerId, 10_000], [pipelines[1]!.writerId, 7_000]]))
  })
})
