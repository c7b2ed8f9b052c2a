// The PostgreSQL audit sink: the shared contract on a fresh, migrated database, written as the
// application role; plus what only this sink has — partitions made on demand, the switch between
// its two write paths, and a staging table that has to be recreated when the connection is.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import postgres from 'postgres'
import { openPostgresAuditSink, PostgresAuditSink } from '../../src/audit/postgres-audit-sink.js'
import { readPostgresAuditBlocks, readPostgresAuditEvents } from '../../src/audit/audit-event-readers.js'
import type { ChainedAuditEvent } from '../../src/audit/audit-event.js'
import { runMigrations } from '../../src/store/postgres/migrate.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { asRole, auditEvent, batchOfEvents, chain } from './audit-fixtures.js'
import { PostgresAuditQuery } from '../../src/audit/postgres-audit-query.js'
import { runAuditSinkContract } from './audit-sink.contract.js'

const DAY = 24 * 60 * 60 * 1000

async function migratedDatabase (): Promise<{ db: TestDatabase, appUrl: string }> {
  const db = await createTestDatabase()
  await runMigrations(db.url)
  return { db, appUrl: asRole(db.url, 'relaykey_app') }
}

// both write paths: COPY straight into audit_events (falling back to staging when a batch meets
// stored events), and the staging path alone
for (const [name, directCopy] of [['postgres', true], ['postgres, staging path only', false]] as const) {
  runAuditSinkContract(name, async () => {
    const { db, appUrl } = await migratedDatabase()
    const sink = openPostgresAuditSink(appUrl, { directCopy })
    const reader = postgres(appUrl, { max: 1, onnotice: () => {} })
    return {
      sink,
      rows: () => readPostgresAuditEvents(reader),
      blocks: () => readPostgresAuditBlocks(reader),
      usage: async (...args) => await new PostgresAuditQuery(reader).usage(...args),
      async cleanup () {
        await sink.close()
        await reader.end()
        await db.drop()
      },
    }
  })
}

describe('postgres audit sink', () => {
  async function setup (t: { after: (fn: () => Promise<void>) => void }): Promise<{ admin: postgres.Sql, appUrl: string }> {
    const { db, appUrl } = await migratedDatabase()
    const admin = postgres(db.url, { max: 1, onnotice: () => {} })
    t.after(async () => {
      await admin.end()
      await db.drop()
    })
    return { admin, appUrl }
  }

  async function storedIds (admin: postgres.Sql, writer: string): Promise<string[]> {
    const rows = await admin<Array<{ id: string }>>`SELECT id FROM audit_events WHERE writer_id = ${writer} ORDER BY seq`
    return rows.map((r) => r.id)
  }

  it('creates the partitions a batch needs: a replay from months ago, a clock months ahead', async (t) => {
    const { admin, appUrl } = await setup(t)
    const sink = openPostgresAuditSink(appUrl)
    t.after(() => sink.close())
    const writer = randomUUID()
    const batch: ChainedAuditEvent[] = chain(writer, [
      auditEvent(1, Date.now() - 130 * DAY),
      auditEvent(2, Date.now()),
      auditEvent(3, Date.now() + 200 * DAY),
    ])
    await sink.write(batchOfEvents(batch))
    assert.deepEqual(await storedIds(admin, writer), batch.map((e) => e.id))
    const owners = await admin<Array<{ owner: string }>>`
      SELECT DISTINCT pg_get_userbyid(c.relowner) AS owner
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'audit_events'::regclass`
    assert.deepEqual(owners.map((r) => r.owner), ['relaykey_audit_owner'])
  })

  it('takes the staging path for a replay and returns to direct COPY once a batch is all new', async (t) => {
    const { admin, appUrl } = await setup(t)
    const statements: string[] = []
    // postgres.js reports every statement it sends to `debug`: that shows which path ran
    const sql = postgres(appUrl, { max: 1, onnotice: () => {}, debug: (_conn, query) => { statements.push(query) } })
    const sink = new PostgresAuditSink(sql)
    t.after(() => sink.close())
    const writer = randomUUID()
    const events = chain(writer, Array.from({ length: 40 }, (_, i) => auditEvent(i, Date.now() - 40 + i)))
    const paths = async (batch: ChainedAuditEvent[]): Promise<string[]> => {
      statements.length = 0
      await sink.write(batchOfEvents(batch))
      return statements.filter((q) => /^(COPY|INSERT|WITH)/.test(q)).map((q) => q.split(/ \(|\n/)[0]!)
    }
    // no temporary table: a transaction that touches one empties them all at commit
    const direct = ['COPY audit_events', 'INSERT INTO audit_usage_hourly AS u']
    // staging: one statement stores the new events and adds those, only, to the usage rollup
    const staged = ['COPY audit_staging', 'WITH stored AS']
    assert.deepEqual(await paths(events.slice(0, 10)), direct)
    // a replay: 10 stored, 10 new
    assert.deepEqual(await paths(events.slice(0, 20)), ['COPY audit_events', ...staged])
    // still replaying as far as the sink knows; this batch turns out all new
    assert.deepEqual(await paths(events.slice(20, 30)), staged)
    assert.deepEqual(await paths(events.slice(30)), direct)
    // every event counted once in the rollup, the replayed ten too
    const [usage] = await admin<Array<{ requests: string }>>`SELECT sum(requests)::text AS requests FROM audit_usage_hourly`
    assert.equal(usage!.requests, '40')
    assert.deepEqual(await storedIds(admin, writer), events.map((e) => e.id))
  })

  it('checks the partitions again once a day, not on every batch', async (t) => {
    const { admin, appUrl } = await setup(t)
    let clock = Date.now()
    const sink = openPostgresAuditSink(appUrl, { now: () => clock })
    t.after(() => sink.close())
    const write = (): Promise<void> => sink.write(batchOfEvents(chain(randomUUID(), [auditEvent(1, Date.now())])))
    const furthest = async (): Promise<string> => {
      const [row] = await admin<Array<{ name: string }>>`
        SELECT max(c.relname) AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_events'::regclass`
      return row.name
    }
    await write()
    const last = await furthest()
    // retention as the owner would run it: the triggers do not stop a DROP by the owner
    await admin.unsafe(`DROP TABLE ${last}`)
    clock += DAY - 60_000
    await write()
    assert.notEqual(await furthest(), last)
    clock += 2 * 60_000
    await write()
    assert.equal(await furthest(), last)
  })

  it('recreates its staging table when its connection was replaced', async (t) => {
    const { admin, appUrl } = await setup(t)
    const sink = openPostgresAuditSink(appUrl, { directCopy: false })
    t.after(() => sink.close())
    const writer = randomUUID()
    const batch = chain(writer, [auditEvent(1, Date.now()), auditEvent(2, Date.now()), auditEvent(3, Date.now())])
    await sink.write(batchOfEvents(batch.slice(0, 1)))
    await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'relaykey_app' AND datname = current_database()`
    // the first attempts meet the dead session's errors, as the pipeline's would; it retries
    for (let attempt = 1; ; attempt++) {
      try {
        await sink.write(batchOfEvents(batch.slice(1, 2)))
        break
      } catch (err) {
        if (attempt === 5) throw err
      }
    }
    await sink.write(batchOfEvents(batch.slice(2)))
    assert.deepEqual(await storedIds(admin, writer), batch.map((e) => e.id))
  })
})
