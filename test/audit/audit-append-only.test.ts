// audit_events can only grow: the application role may insert and read, nothing else, on the
// table and on each partition; the triggers stop even the owner; SQLite refuses too.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import type Database from 'better-sqlite3'
import { openPostgresAuditSink } from '../../src/audit/postgres-audit-sink.js'
import { SqliteAuditSink } from '../../src/audit/sqlite-audit-sink.js'
import { runMigrations } from '../../src/store/postgres/migrate.js'
import { openSqliteDatabase } from '../../src/store/sqlite/schema.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { asRole, batchOfEvents, chainedEvents } from './audit-fixtures.js'

const NOT_ALLOWED = /permission denied|must be owner/
const APPEND_ONLY = /append-only/
const DAY = 24 * 60 * 60 * 1000

describe('postgres audit_events is append-only', () => {
  let db: TestDatabase
  let app: postgres.Sql
  let admin: postgres.Sql
  let partitions: string[]

  before(async () => {
    db = await createTestDatabase()
    await runMigrations(db.url)
    const sink = openPostgresAuditSink(asRole(db.url, 'relaykey_app'))
    // last month too: its partition is made on demand, after the migration
    await sink.write(batchOfEvents([...chainedEvents(10), ...chainedEvents(3, undefined, Date.now() - 40 * DAY)]))
    await sink.close()
    app = postgres(asRole(db.url, 'relaykey_app'), { max: 1, onnotice: () => {} })
    admin = postgres(db.url, { max: 1, onnotice: () => {} })
    const rows = await admin<Array<{ name: string }>>`
      SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'audit_events'::regclass ORDER BY 1`
    partitions = rows.map((r) => r.name)
  })

  after(async () => {
    await app.end()
    await admin.end()
    await db.drop()
  })

  it('lets the application role insert and select', async () => {
    const [{ who }] = await app`SELECT current_user AS who`
    assert.equal(who, 'relaykey_app')
    await app`
      INSERT INTO audit_events (ts, id, request_id, partner, method, path, status, outcome, attempts,
        latency_ms, cost, bytes_in, bytes_out, writer_id, seq, prev_hash, hash)
      VALUES (now(), gen_random_uuid(), 'req-sql', 'acme', 'GET', '/', 200, 'forwarded', 1, 1, 0, 0, 0, 'sql', 1, '', '')`
    const [{ n }] = await app`SELECT count(*)::int AS n FROM audit_events`
    assert.equal(n, 14)
  })

  it('refuses the application role UPDATE, DELETE and TRUNCATE of audit_events', async () => {
    await assert.rejects(app`UPDATE audit_events SET status = 500`, NOT_ALLOWED)
    await assert.rejects(app`DELETE FROM audit_events`, NOT_ALLOWED)
    await assert.rejects(app`TRUNCATE audit_events`, NOT_ALLOWED)
  })

  it('refuses the application role any change to a partition addressed directly', async () => {
    assert.ok(partitions.length >= 5, partitions.join())
    const partition = partitions[0]
    await assert.rejects(app.unsafe(`UPDATE ${partition} SET status = 500`), NOT_ALLOWED)
    await assert.rejects(app.unsafe(`DELETE FROM ${partition}`), NOT_ALLOWED)
    await assert.rejects(app.unsafe(`TRUNCATE ${partition}`), NOT_ALLOWED)
  })

  it('refuses the application role DROP TABLE and DETACH PARTITION, and switching the triggers off', async () => {
    const partition = partitions[0]
    await assert.rejects(app.unsafe(`DROP TABLE ${partition}`), NOT_ALLOWED)
    await assert.rejects(app.unsafe(`ALTER TABLE audit_events DETACH PARTITION ${partition}`), NOT_ALLOWED)
    await assert.rejects(app`DROP TABLE audit_events`, NOT_ALLOWED)
    await assert.rejects(app`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`, NOT_ALLOWED)
    await assert.rejects(app`SELECT relaykey_ensure_audit_partitions(1000)`, /between 0 and 24/)
  })

  it('stops the owner too: the triggers refuse UPDATE, DELETE and TRUNCATE on the table and every partition', async () => {
    const statements = ['UPDATE audit_events SET status = 500', 'DELETE FROM audit_events', 'TRUNCATE audit_events']
    // row triggers fire for rows: UPDATE and DELETE are tried where there are some
    const filled = await admin<Array<{ name: string }>>`SELECT DISTINCT tableoid::regclass::text AS name FROM audit_events`
    assert.equal(filled.length, 2)
    for (const { name } of filled) statements.push(`UPDATE ${name} SET status = 500`, `DELETE FROM ${name}`)
    for (const partition of partitions) statements.push(`TRUNCATE ${partition}`)
    for (const statement of statements) {
      await assert.rejects(admin.begin(async (tx) => {
        await tx`SET LOCAL ROLE relaykey_audit_owner`
        await tx.unsafe(statement)
      }), APPEND_ONLY, statement)
    }
    const [{ n }] = await admin`SELECT count(*)::int AS n FROM audit_events`
    assert.equal(n, 14)
  })

  it('keeps the control-plane tables readable and writable for the application role', async () => {
    await app`
      INSERT INTO partners (id, slug, base_urls, auth, timeouts, retry, circuit_breaker)
      VALUES ('prt_audit', 'audit-test', '{}', '{}', '{}', '{}', '{}')`
    await app`UPDATE partners SET slug = 'audit-test-2' WHERE id = 'prt_audit'`
    assert.equal((await app`DELETE FROM partners WHERE id = 'prt_audit'`).count, 1)
  })
})

describe('sqlite audit_events is append-only', () => {
  let dir: string
  let db: Database.Database

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relaykey-audit-'))
    db = openSqliteDatabase(join(dir, 'relaykey.db'))
    await new SqliteAuditSink(db).write(batchOfEvents(chainedEvents(5)))
  })

  after(async () => {
    db.close()
    await rm(dir, { recursive: true, force: true })
  })

  function statuses (): unknown[] {
    return db.prepare('SELECT status, count(*) AS n FROM audit_events GROUP BY status ORDER BY status').all()
  }

  it('inserts and selects, refuses UPDATE and DELETE (with or without WHERE)', () => {
    const stored = statuses()
    assert.equal(db.prepare('SELECT count(*) AS n FROM audit_events').pluck().get(), 5)
    assert.throws(() => db.prepare('UPDATE audit_events SET status = 500').run(), APPEND_ONLY)
    assert.throws(() => db.prepare('DELETE FROM audit_events WHERE seq = 1').run(), APPEND_ONLY)
    assert.throws(() => db.prepare('DELETE FROM audit_events').run(), APPEND_ONLY)
    assert.deepEqual(statuses(), stored)
  })

  it('turns INSERT OR REPLACE and upserts of a stored event into no-ops instead of rewrites', () => {
    const stored = statuses()
    const columns = (db.prepare('SELECT * FROM audit_events LIMIT 1').columns()).map((c) => c.name)
    const rewritten = columns.map((c) => c === 'status' ? '999' : c).join(', ')
    assert.equal(db.prepare(`INSERT OR REPLACE INTO audit_events SELECT ${rewritten} FROM audit_events`).run().changes, 0)
    // WHERE true: SQLite's parser needs it between an INSERT's SELECT and ON CONFLICT
    const upsert = 'INSERT INTO audit_events SELECT * FROM audit_events WHERE true ON CONFLICT DO UPDATE SET status = 500'
    assert.equal(db.prepare(upsert).run().changes, 0)
    assert.deepEqual(statuses(), stored)
  })
})
