// Audit rows stored before payment_amount existed still verify — read by a newer RelayKey before
// the upgrade's migration, and after it (migration 0005 / SQLite schema step 5) next to new paid
// rows. They read back with payment_amount NULL, which is what they were hashed with. The later
// usage rollups (0008 / step 9) count them too.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import { verifyChains } from '../../src/audit/audit-chain.js'
import type { ChainedAuditEvent } from '../../src/audit/audit-event.js'
import { readPostgresAuditEvents, readSqliteAuditEvents } from '../../src/audit/audit-event-readers.js'
import { openPostgresAuditSink } from '../../src/audit/postgres-audit-sink.js'
import { SqliteAuditSink } from '../../src/audit/sqlite-audit-sink.js'
import { MIGRATIONS_DIR, runMigrations } from '../../src/store/postgres/migrate.js'
import { applySqliteSchema, openSqliteDatabase, SQLITE_MIGRATIONS } from '../../src/store/sqlite/schema.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { PostgresAuditQuery } from '../../src/audit/postgres-audit-query.js'
import { SqliteAuditQuery } from '../../src/audit/sqlite-audit-query.js'
import { asRole, auditEvent, batchOfEvents, chain, chainedEvents, usageCountedFrom } from './audit-fixtures.js'

const ALL = { key_id: null, customer: null, partner: null }
const FAR = new Date('3000-01-01')

/** audit_events as the previous release wrote it */
const OLD_COLUMNS: Array<Exclude<keyof ChainedAuditEvent, 'payment_amount'>> = [
  'ts', 'id', 'request_id', 'key_id', 'customer', 'team', 'service', 'environment', 'partner',
  'credential_id', 'method', 'path', 'status', 'outcome', 'attempts', 'latency_ms',
  'upstream_latency_ms', 'cost', 'bytes_in', 'bytes_out', 'payment_tx', 'writer_id', 'seq',
  'prev_hash', 'hash',
]

/** one writer's events the previous release could have written: payment_tx on some, no amount */
function oldEvents (): ChainedAuditEvent[] {
  const now = Date.now()
  const events = chain(`old-${now}`, Array.from({ length: 30 }, (_, i) => ({ ...auditEvent(i, now - 30 + i), payment_amount: null })))
  assert.ok(events.some((e) => e.payment_tx !== null))
  return events
}

async function collect (rows: AsyncIterable<ChainedAuditEvent>): Promise<ChainedAuditEvent[]> {
  const out: ChainedAuditEvent[] = []
  for await (const row of rows) out.push(row)
  return out
}

describe('audit rows from before payment_amount', () => {
  it('verify in PostgreSQL before and after migration 0005, next to new paid rows', async (t) => {
    const db = await createTestDatabase()
    t.after(() => db.drop())
    const dir = mkdtempSync(join(tmpdir(), 'relaykey-migrations-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    for (const name of readdirSync(MIGRATIONS_DIR).filter((n) => n.endsWith('.sql') && n < '0005')) {
      copyFileSync(join(MIGRATIONS_DIR, name), join(dir, name))
    }
    assert.deepEqual(await runMigrations(db.url, dir), ['0001_control_plane.sql', '0002_policy_governance_failure.sql', '0003_audit_events.sql', '0004_app_role_reads_migrations.sql'])
    const admin = postgres(db.url, { max: 1, onnotice: () => {} })
    t.after(() => admin.end())
    const old = oldEvents()
    await admin`SELECT relaykey_ensure_audit_partitions(3)`
    await admin`INSERT INTO audit_events ${admin(old.map(({ payment_amount: _, ...e }) => ({ ...e, ts: new Date(e.ts) })), OLD_COLUMNS)}`

    // a newer binary's verify, run before the migration: no payment_amount column yet
    const before = await collect(readPostgresAuditEvents(admin))
    assert.deepEqual(before, old)
    assert.equal((await verifyChains(before)).ok, true)

    // 0005 first; later migrations follow it
    assert.equal((await runMigrations(db.url))[0], '0005_audit_payment_amount.sql')
    const [column] = await admin`
      SELECT format_type(atttypid, atttypmod) AS type, attnotnull FROM pg_attribute
       WHERE attrelid = 'audit_events'::regclass AND attname = 'payment_amount'`
    assert.deepEqual({ ...column }, { type: 'numeric(78,0)', attnotnull: false })
    const paid = chainedEvents(30)
    assert.ok(paid.some((e) => e.payment_amount !== null))
    const sink = openPostgresAuditSink(asRole(db.url, 'relaykey_app'))
    await sink.write(batchOfEvents(paid))
    await sink.close()
    const after = await collect(readPostgresAuditEvents(admin))
    assert.deepEqual(new Set(after.map((e) => e.id)), new Set([...old, ...paid].map((e) => e.id)))
    assert.deepEqual(after.filter((e) => e.writer_id === old[0]!.writer_id), old)
    const result = await verifyChains(after)
    assert.equal(result.ok, true, JSON.stringify(result.problems))
    assert.equal(result.writers.length, 2)
    // the rows from before the usage rollups (0008) were counted into them by the migration
    assert.deepEqual(await new PostgresAuditQuery(admin).usage(ALL, new Date(0), FAR), usageCountedFrom([...old, ...paid]))
  })

  it('verify in SQLite before and after schema step 5, next to new paid rows', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'relaykey-audit-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'relaykey.db')
    const oldDb = new Database(file)
    applySqliteSchema(oldDb, SQLITE_MIGRATIONS.slice(0, 4))
    const old = oldEvents()
    const insert = oldDb.prepare(`INSERT INTO audit_events (${OLD_COLUMNS.join(', ')}) VALUES (${OLD_COLUMNS.map(() => '?').join(', ')})`)
    for (const e of old) insert.run(...OLD_COLUMNS.map((c) => (c === 'ts' ? new Date(e.ts).toISOString() : e[c])))
    const before = await collect(readSqliteAuditEvents(oldDb))
    assert.deepEqual(before, old)
    assert.equal((await verifyChains(before)).ok, true)
    oldDb.close()

    const db = openSqliteDatabase(file)
    t.after(() => db.close())
    assert.equal(db.pragma('user_version', { simple: true }), SQLITE_MIGRATIONS.length)
    const paid = chainedEvents(30)
    await new SqliteAuditSink(db).write(batchOfEvents(paid))
    const after = await collect(readSqliteAuditEvents(db))
    assert.deepEqual(after.filter((e) => e.writer_id === old[0]!.writer_id), old)
    assert.equal(after.length, old.length + paid.length)
    const result = await verifyChains(after)
    assert.equal(result.ok, true, JSON.stringify(result.problems))
    // the rows from before the usage rollups (step 9) were counted into them by that step
    assert.deepEqual(await new SqliteAuditQuery(db).usage(ALL, new Date(0), FAR), usageCountedFrom([...old, ...paid]))
  })
})
