// The moments where the audit log and memory's queue hand over, on a real SQLite sink with a
// fault switch in front of it: close() while a write is still in flight, catching up with the
// log under steady traffic, a chunk that ends right at a segment's last row, the log at its
// bound while the database is down, and an event refused twice.
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import pino from 'pino'
import type { AuditBatch } from '../../src/audit/audit-batch.js'
import { verifyChains } from '../../src/audit/audit-chain.js'
import { readSqliteAuditBlocks, readSqliteAuditEvents } from '../../src/audit/audit-event-readers.js'
import { AuditPipeline, type AuditPipelineOptions } from '../../src/audit/audit-pipeline.js'
import type { AuditSink } from '../../src/audit/audit-sink.js'
import { formatLogFileName, parseLogFileName } from '../../src/audit/log-file-name.js'
import { openSqliteAuditSink } from '../../src/audit/sqlite-audit-sink.js'
import { plainEvent } from './audit-fixtures.js'

const logger = pino({ level: process.env.RELAYKEY_TEST_LOG ?? 'silent' })

/** the real sink, behind a switch: `fault` runs before each write and may delay or throw */
class SwitchedSink implements AuditSink {
  readonly inner: AuditSink
  fault: ((batch: AuditBatch) => Promise<void>) | null = null
  constructor (inner: AuditSink) { this.inner = inner }
  async write (batch: AuditBatch): Promise<void> {
    await this.fault?.(batch)
    await this.inner.write(batch)
  }

  async close (): Promise<void> { await this.inner.close() }
}

interface Setup { dir: string; file: string; sink: SwitchedSink; pipeline: (options?: Partial<AuditPipelineOptions>) => AuditPipeline }

function setUp (t: TestContext): Setup {
  const dir = mkdtempSync(join(tmpdir(), 'relaykey-log-edges-'))
  const file = join(dir, 'relaykey.db')
  const sink = new SwitchedSink(openSqliteAuditSink(file))
  t.after(async () => {
    await sink.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { dir, file, sink, pipeline: (options = {}) => new AuditPipeline({ sink, logDir: join(dir, 'audit-log'), logger, fsync: 'never', ...options }) }
}

/** request_ids stored, and whether every chain verifies */
async function stored (file: string): Promise<{ ids: Set<string>; ok: boolean }> {
  const db = new Database(file, { readonly: true })
  try {
    const ids = new Set((db.prepare('SELECT request_id FROM audit_events').all() as Array<{ request_id: string }>).map((r) => r.request_id))
    const result = await verifyChains(readSqliteAuditEvents(db), readSqliteAuditBlocks(db))
    return { ids, ok: result.ok }
  } finally {
    db.close()
  }
}

function expected (from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `req-${from + i}`)
}

describe('audit log and memory queue handing over', () => {
  it('close() while a write is in flight that then fails: the events stay in the log and the next start stores them', async (t) => {
    const s = setUp(t)
    const first = s.pipeline({ flushIntervalMs: 10, writeTimeoutMs: 5_000 })
    await first.start()
    let fail: (err: Error) => void = () => {}
    s.sink.fault = () => new Promise((_resolve, reject) => { fail = reject })
    for (let i = 1; i <= 50; i++) first.record(plainEvent(i))
    await sleep(50) // the tick has taken the 50 events; their write hangs
    const closing = first.close()
    await sleep(20)
    fail(new Error('connection reset'))
    await closing
    assert.deepEqual([first.stats().written, first.stats().dropped], [0, 0])
    assert.ok(readdirSync(join(s.dir, 'audit-log')).length > 0, 'the log is kept for the next start')
    // the next start is another process: this one's files belong to an owner that is gone
    const gone = `${spawnSync('true').pid!}-1-00`
    for (const file of readdirSync(join(s.dir, 'audit-log'))) {
      renameSync(join(s.dir, 'audit-log', file), join(s.dir, 'audit-log', formatLogFileName({ ...parseLogFileName(file)!, owner: gone })))
    }
    s.sink.fault = null
    const next = s.pipeline()
    await next.start()
    await next.flush()
    await next.close()
    const { ids, ok } = await stored(s.file)
    assert.deepEqual([...ids].sort(), expected(1, 50).sort())
    assert.ok(ok)
  })

  it('after one failed write under steady traffic, goes back to shipping from memory', async (t) => {
    const s = setUp(t)
    const pipeline = s.pipeline({ flushIntervalMs: 20, probeMinMs: 20, probeMaxMs: 20 })
    await pipeline.start()
    let failOnce = false
    s.sink.fault = async () => {
      await sleep(2)
      if (failOnce) {
        failOnce = false
        throw new Error('one failed write')
      }
    }
    let n = 0
    const traffic = setInterval(() => { for (let i = 0; i < 4; i++) pipeline.record(plainEvent(++n)) }, 1)
    try {
      await sleep(300)
      failOnce = true
      await sleep(700)
      const replayedThen = pipeline.stats().replayedEvents
      assert.ok(replayedThen > 0, 'the failed batch was read back from the log')
      await sleep(700)
      // caught up: what came since went through memory, not the log
      assert.equal(pipeline.stats().replayedEvents, replayedThen)
    } finally {
      clearInterval(traffic)
    }
    await pipeline.flush()
    await pipeline.close()
    const { ids, ok } = await stored(s.file)
    assert.equal(ids.size, n)
    assert.ok(ok)
  })

  it('a chunk read from the log that ends at a segment\'s last row still ships the block after it', async (t) => {
    const s = setUp(t)
    // the database down while 30 events in turns of 5 fill segments of one turn each
    s.sink.fault = async () => { throw new Error('down') }
    const pipeline = s.pipeline({ batchSize: 5, maxQueued: 5, segmentBytes: 100, probeMinMs: 10, probeMaxMs: 10 })
    await pipeline.start()
    for (let turn = 0; turn < 6; turn++) {
      for (let i = 1; i <= 5; i++) pipeline.record(plainEvent(turn * 5 + i))
      await sleep(5)
    }
    s.sink.fault = null
    for (let i = 0; i < 100 && pipeline.stats().written < 30; i++) await sleep(20)
    await pipeline.close()
    const { ids, ok } = await stored(s.file)
    assert.deepEqual([...ids].sort(), expected(1, 30).sort())
    assert.ok(ok, 'every block arrived with its rows')
  })

  it('the log at its bound while the database is down: every event lost is counted', async (t) => {
    const s = setUp(t)
    s.sink.fault = async () => { throw new Error('down') }
    const pipeline = s.pipeline({ maxLogBytes: 1 })
    await pipeline.start()
    for (let i = 1; i <= 20; i++) pipeline.record(plainEvent(i))
    await sleep(50)
    await pipeline.close()
    assert.deepEqual([pipeline.stats().logWriteFailures, pipeline.stats().dropped], [20, 20])
  })

  it('an event refused again after its batch was read back is quarantined once', async (t) => {
    const s = setUp(t)
    let writes = 0
    // writes: 1–4 refused, 1–2 refused, 1 stored, 2 refused and quarantined, then 3–4 fails for
    // another reason, once: the batch is read back from the log and 2 refused again
    s.sink.fault = async () => { if (++writes === 5) throw new Error('connection reset') }
    const pipeline = s.pipeline({ probeMinMs: 10, probeMaxMs: 10 })
    await pipeline.start()
    for (let i = 1; i <= 4; i++) pipeline.record(i === 2 ? { ...plainEvent(i), payment_tx: '0xabc', payment_amount: 'twelve' } : plainEvent(i))
    for (let i = 0; i < 100 && pipeline.stats().written < 3; i++) await sleep(20)
    await pipeline.close()
    assert.equal(pipeline.stats().quarantined, 1)
    const { ids } = await stored(s.file)
    assert.deepEqual([...ids].sort(), ['req-1', 'req-3', 'req-4'])
  })
})
