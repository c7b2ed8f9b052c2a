// Spill files of older releases (RELAYKEY_DATA_DIR/audit-spill, whole events per line), some
// written before audit events had payment_amount — their lines lack the key — are still shipped
// after an upgrade, in both stores: stored with payment_amount NULL, every chain intact.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pino from 'pino'
import postgres from 'postgres'
import { verifyChains } from '../../src/audit/audit-chain.js'
import type { ChainedAuditEvent } from '../../src/audit/audit-event.js'
import { readPostgresAuditEvents, readSqliteAuditEvents } from '../../src/audit/audit-event-readers.js'
import { AuditPipeline } from '../../src/audit/audit-pipeline.js'
import type { AuditSink } from '../../src/audit/audit-sink.js'
import { openPostgresAuditSink } from '../../src/audit/postgres-audit-sink.js'
import { openSqliteAuditSink } from '../../src/audit/sqlite-audit-sink.js'
import { formatLogFileName, LEGACY_PREFIX, ownerAlive } from '../../src/audit/log-file-name.js'
import { runMigrations } from '../../src/store/postgres/migrate.js'
import { openSqliteDatabase } from '../../src/store/sqlite/schema.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { asRole, auditEvent, chain } from './audit-fixtures.js'

const logger = pino({ level: process.env.RELAYKEY_TEST_LOG ?? 'silent' })

/**
 * A dead process's spill file in the previous release's format; returns its events as they
 * must read back. Some carry a payment_tx, which that release already had.
 */
function oldSpillFile (spillDir: string): ChainedAuditEvent[] {
  const writer = randomUUID()
  const events = chain(writer, Array.from({ length: 40 }, (_, i) => ({ ...auditEvent(i, Date.now() - 40 + i), payment_amount: null })))
  assert.ok(events.some((e) => e.payment_tx !== null))
  const lines = events.map(({ payment_amount: _, ...old }) => JSON.stringify(old) + '\n')
  assert.ok(!lines[0]!.includes('payment_amount'))
  const owner = `${spawnSync('true').pid!}-1-00`
  assert.equal(ownerAlive(owner), false)
  mkdirSync(spillDir, { recursive: true })
  writeFileSync(join(spillDir, formatLogFileName({ writerId: writer, firstSeq: 1, owner, prefix: LEGACY_PREFIX })), lines.join(''))
  return events
}

/** a pipeline of this release on the data dir: its log in audit-log, the old files in audit-spill */
async function replay (sink: AuditSink, dataDir: string, count: number): Promise<void> {
  const spillDir = join(dataDir, 'audit-spill')
  const pipeline = new AuditPipeline({ sink, logDir: join(dataDir, 'audit-log'), legacyDirs: [spillDir], logger })
  await pipeline.start()
  try {
    // the file goes once all of it is in the sink
    for (let i = 0; i < 2000 && (pipeline.stats().written < count || pipeline.stats().logFiles > 0); i++) await sleep(10)
    assert.deepEqual({ ...pipeline.stats(), sinkUp: true }, { queueDepth: 0, replayedEvents: count, logBytes: 0, logFiles: 0, logWriteFailures: 0, written: count, dropped: 0, quarantined: 0, sinkUp: true })
  } finally {
    await pipeline.close()
  }
  assert.deepEqual(readdirSync(spillDir), [])
}

async function collect (rows: AsyncIterable<ChainedAuditEvent>): Promise<ChainedAuditEvent[]> {
  const out: ChainedAuditEvent[] = []
  for await (const row of rows) out.push(row)
  return out
}

describe('spill files from before payment_amount', () => {
  it('replay into SQLite with payment_amount null and chains intact', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'relaykey-audit-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const events = oldSpillFile(join(dir, 'audit-spill'))
    const file = join(dir, 'relaykey.db')
    const sink = openSqliteAuditSink(file)
    t.after(() => sink.close())
    await replay(sink, dir, events.length)
    const db = openSqliteDatabase(file)
    t.after(() => db.close())
    const stored = await collect(readSqliteAuditEvents(db))
    assert.deepEqual(stored, events)
    assert.equal((await verifyChains(stored)).ok, true)
  })

  it('replay into PostgreSQL with payment_amount null and chains intact', async (t) => {
    const db = await createTestDatabase()
    t.after(() => db.drop())
    await runMigrations(db.url)
    const appUrl = asRole(db.url, 'relaykey_app')
    const dir = mkdtempSync(join(tmpdir(), 'relaykey-audit-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const events = oldSpillFile(join(dir, 'audit-spill'))
    const sink = openPostgresAuditSink(appUrl)
    t.after(() => sink.close())
    await replay(sink, dir, events.length)
    const sql = postgres(appUrl, { max: 1, onnotice: () => {} })
    t.after(() => sql.end())
    const stored = await collect(readPostgresAuditEvents(sql))
    assert.deepEqual(stored, events)
    assert.equal((await verifyChains(stored)).ok, true)
  })
})
