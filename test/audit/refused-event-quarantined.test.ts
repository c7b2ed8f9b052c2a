// One event the store refuses for its content must not stall the audit trail: the batch is split
// until the refused event is alone, it goes to the quarantine file (counted, logged), every other
// event is stored, and the sink is never marked down for it. PostgreSQL (a NUL byte, a time with
// no partition) and SQLite on its writer thread (a malformed payment_amount).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pino from 'pino'
import postgres from 'postgres'
import type { AuditEvent, ChainedAuditEvent } from '../../src/audit/audit-event.js'
import { AuditPipeline } from '../../src/audit/audit-pipeline.js'
import type { AuditSink } from '../../src/audit/audit-sink.js'
import { openPostgresAuditSink } from '../../src/audit/postgres-audit-sink.js'
import { openThreadedSqliteAuditSink } from '../../src/audit/threaded-sqlite-audit-sink.js'
import { runMigrations } from '../../src/store/postgres/migrate.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { asRole, plainEvent } from './audit-fixtures.js'

const logger = pino({ level: process.env.RELAYKEY_TEST_LOG ?? 'silent' })

const event = plainEvent

interface Quarantined { reason: string; event: ChainedAuditEvent }

/**
 * Records 1,000 events with `bad` ones at the given positions, then 200 more; returns what the
 * pipeline reports and the quarantine file's lines.
 */
async function recordWithRefused (sink: AuditSink, bad: Map<number, (e: AuditEvent) => AuditEvent>): Promise<{ pipeline: AuditPipeline; quarantined: Quarantined[]; sinkDowns: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'relaykey-quarantine-'))
  let sinkDowns = 0
  const pipeline = new AuditPipeline({ sink, logDir: join(dir, 'audit-log'), logger, onMetrics: { sinkDown: () => sinkDowns++ } })
  try {
    await pipeline.start()
    for (let i = 0; i < 1000; i++) pipeline.record(bad.get(i)?.(event(i)) ?? event(i))
    await pipeline.flush()
    for (let i = 1000; i < 1200; i++) pipeline.record(event(i))
    await pipeline.flush()
    await pipeline.close()
    const text = readFileSync(join(dir, 'audit-quarantine', `audit-quarantine.${pipeline.writerId}.ndjson`), 'utf8')
    const quarantined = text.trim().split('\n').map((line) => JSON.parse(line) as Quarantined)
    return { pipeline, quarantined, sinkDowns }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

describe('an event the store refuses is quarantined, the rest go on', () => {
  it('PostgreSQL: a NUL byte, a time without a partition, and one from 1970 (a clock reset)', async (t) => {
    const db = await createTestDatabase()
    t.after(() => db.drop())
    await runMigrations(db.url)
    const sink = openPostgresAuditSink(asRole(db.url, 'relaykey_app'))
    t.after(() => sink.close())
    const { pipeline, quarantined, sinkDowns } = await recordWithRefused(sink, new Map([
      [437, (e) => ({ ...e, path: '/v1/items/\u0000nul' })],
      [800, (e) => ({ ...e, ts: Date.UTC(2300, 0, 1) })],
      [900, (e) => ({ ...e, ts: Date.UTC(1970, 0, 1) })],
    ]))
    assert.deepEqual(quarantined.map((q) => q.event.request_id), ['req-437', 'req-800', 'req-900'])
    assert.match(quarantined[0]!.reason, /0x00/)
    assert.match(quarantined[1]!.reason, /partition/)
    assert.match(quarantined[2]!.reason, /partition/)
    assert.equal(quarantined[0]!.event.path, '/v1/items/\u0000nul')
    const stats = pipeline.stats()
    assert.deepEqual([stats.quarantined, stats.dropped, stats.written, sinkDowns, stats.sinkUp], [3, 0, 1197, 0, true])
    const sql = postgres(db.url, { max: 1, onnotice: () => {} })
    try {
      const rows = await sql<Array<{ request_id: string }>>`SELECT request_id FROM audit_events ORDER BY seq`
      const expected = Array.from({ length: 1200 }, (_, i) => `req-${i}`).filter((id) => !['req-437', 'req-800', 'req-900'].includes(id))
      assert.deepEqual(rows.map((r) => r.request_id), expected)
    } finally {
      await sql.end()
    }
  })

  it('SQLite on its writer thread: a malformed payment_amount', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'relaykey-quarantine-db-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'relaykey.db')
    const sink = await openThreadedSqliteAuditSink(file)
    t.after(() => sink.close())
    const { pipeline, quarantined, sinkDowns } = await recordWithRefused(sink, new Map([
      [3, (e) => ({ ...e, payment_tx: '0xabc', payment_amount: 'twelve' })],
    ]))
    assert.deepEqual(quarantined.map((q) => [q.event.request_id, q.event.payment_amount]), [['req-3', 'twelve']])
    assert.match(quarantined[0]!.reason, /payment_amount/)
    const stats = pipeline.stats()
    assert.deepEqual([stats.quarantined, stats.dropped, stats.written, sinkDowns, stats.sinkUp], [1, 0, 1199, 0, true])
    const read = new Database(file, { readonly: true })
    try {
      const { n } = read.prepare('SELECT count(*) AS n FROM audit_events WHERE request_id <> ?').get('req-3') as { n: number }
      assert.equal(n, 1199)
    } finally {
      read.close()
    }
  })
})
