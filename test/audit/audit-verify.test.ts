// `relaykey audit verify` as an operator runs it: an intact trail exits 0; a row changed or
// removed behind the triggers' back exits 1 and is named.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import type Database from 'better-sqlite3'
import type { ChainedAuditEvent } from '../../src/audit/audit-event.js'
import { openPostgresAuditSink } from '../../src/audit/postgres-audit-sink.js'
import { SqliteAuditSink } from '../../src/audit/sqlite-audit-sink.js'
import { runMigrations } from '../../src/store/postgres/migrate.js'
import { openSqliteDatabase } from '../../src/store/sqlite/schema.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { asRole, batchOfEvents, chainedEvents } from './audit-fixtures.js'
import { runAuditVerify } from '../helpers/audit-verify-cli.js'


const verify = runAuditVerify

/** three writers, written in batches the way the pipeline would */
function trail (): ChainedAuditEvent[][] {
  return [chainedEvents(300), chainedEvents(120), chainedEvents(40)]
}

describe('relaykey audit verify (postgres)', () => {
  let db: TestDatabase
  let admin: postgres.Sql
  let env: Record<string, string>
  let writers: ChainedAuditEvent[][]

  before(async () => {
    db = await createTestDatabase()
    await runMigrations(db.url)
    // verify needs no more than the application role: it only reads
    env = { DATABASE_URL: asRole(db.url, 'relaykey_app') }
    const sink = openPostgresAuditSink(env.DATABASE_URL)
    writers = trail()
    const all = writers.flat()
    for (let i = 0; i < all.length; i += 100) await sink.write(batchOfEvents(all.slice(i, i + 100)))
    await sink.close()
    admin = postgres(db.url, { max: 1, onnotice: () => {} })
  })

  after(async () => {
    await admin.end()
    await db.drop()
  })

  /**
   * what the owner role can do (an administrator, or an intruder with its rights): the table's
   * owner may switch its triggers off, which the application role may not
   */
  async function behindTheTriggers (change: (tx: postgres.TransactionSql) => Promise<unknown>): Promise<void> {
    await admin.begin(async (tx) => {
      await tx`SET LOCAL ROLE relaykey_audit_owner`
      await tx`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`
      await change(tx)
      await tx`ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only`
    })
  }

  it('exits 0 on an intact trail with a summary line per writer', () => {
    const { status, out } = verify(env)
    assert.equal(status, 0, out)
    for (const events of writers) {
      assert.match(out, new RegExp(`writer ${events[0].writer_id}: ${events.length} events, last seq ${events.length}, intact`))
    }
    assert.match(out, /audit verify: 3 writers, 460 events, intact/)
  })

  it('exits 1 naming the row whose status was changed, and 0 again once it is changed back', async () => {
    const victim = writers[0][137]
    await behindTheTriggers((tx) => tx`UPDATE audit_events SET status = 200 + status WHERE id = ${victim.id}`)
    const altered = verify(env)
    assert.equal(altered.status, 1, altered.out)
    assert.match(altered.out, new RegExp(`ALTERED row id ${victim.id} seq 138 writer ${victim.writer_id}`))
    assert.match(altered.out, /1 broken chain/)

    await behindTheTriggers((tx) => tx`UPDATE audit_events SET status = ${victim.status} WHERE id = ${victim.id}`)
    assert.equal(verify(env).status, 0)
  })

  it('exits 1 naming the row whose payment_amount was changed, and 0 again once it is changed back', async () => {
    const victim = writers[0][12]
    assert.equal(victim.payment_amount, '18446744073709551616')
    await behindTheTriggers((tx) => tx`UPDATE audit_events SET payment_amount = payment_amount + 1 WHERE id = ${victim.id}`)
    const altered = verify(env)
    assert.equal(altered.status, 1, altered.out)
    assert.match(altered.out, new RegExp(`ALTERED row id ${victim.id} seq 13 writer ${victim.writer_id}`))

    await behindTheTriggers((tx) => tx`UPDATE audit_events SET payment_amount = ${victim.payment_amount}::numeric WHERE id = ${victim.id}`)
    assert.equal(verify(env).status, 0)
  })

  it('exits 1 naming a row given a payment_amount it was not written with', async () => {
    const victim = writers[2][1]
    assert.equal(victim.payment_amount, null)
    await behindTheTriggers((tx) => tx`UPDATE audit_events SET payment_amount = 1 WHERE id = ${victim.id}`)
    const altered = verify(env)
    assert.equal(altered.status, 1, altered.out)
    assert.match(altered.out, new RegExp(`ALTERED row id ${victim.id} seq 2 writer ${victim.writer_id}`))

    await behindTheTriggers((tx) => tx`UPDATE audit_events SET payment_amount = NULL WHERE id = ${victim.id}`)
    assert.equal(verify(env).status, 0)
  })

  it('exits 1 naming a deleted row as missing', async () => {
    const victim = writers[1][60]
    await behindTheTriggers((tx) => tx`DELETE FROM audit_events WHERE id = ${victim.id}`)
    const { status, out } = verify(env)
    assert.equal(status, 1, out)
    assert.match(out, new RegExp(`MISSING row seq 61 writer ${victim.writer_id} \\(the gap ends before id ${writers[1][61].id}\\)`))
    // the other writers still check out
    assert.match(out, new RegExp(`writer ${writers[2][0].writer_id}: 40 events, last seq 40, intact`))
  })

  it('leaves the triggers on', async () => {
    await assert.rejects(admin`DELETE FROM audit_events`, /append-only/)
  })
})

describe('relaykey audit verify (embedded sqlite)', () => {
  let dir: string
  let db: Database.Database
  let writers: ChainedAuditEvent[][]

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relaykey-audit-'))
    db = openSqliteDatabase(join(dir, 'relaykey.db'))
    const sink = new SqliteAuditSink(db)
    writers = trail()
    for (const events of writers) await sink.write(batchOfEvents(events))
  })

  after(async () => {
    db.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('reads RELAYKEY_DATA_DIR/relaykey.db when DATABASE_URL is unset: intact, then altered (payment_amount too), then missing', () => {
    const intact = verify({ RELAYKEY_DATA_DIR: dir })
    assert.equal(intact.status, 0, intact.out)
    assert.match(intact.out, /3 writers, 460 events, intact/)

    // a file has no roles: whoever can write it can drop the triggers, which the chain exposes
    db.exec('DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete')
    const altered = writers[2][5]
    db.prepare('UPDATE audit_events SET bytes_out = bytes_out + 1 WHERE id = ?').run(altered.id)
    const deleted = writers[0][0]
    db.prepare('DELETE FROM audit_events WHERE id = ?').run(deleted.id)
    const repriced = writers[1][12]
    assert.equal(repriced.payment_amount, '18446744073709551616')
    db.prepare('UPDATE audit_events SET payment_amount = ? WHERE id = ?').run('18446744073709551617', repriced.id)
    const { status, out } = verify({ RELAYKEY_DATA_DIR: dir })
    assert.equal(status, 1, out)
    assert.match(out, new RegExp(`ALTERED row id ${altered.id} seq 6`))
    assert.match(out, new RegExp(`MISSING row seq 1 writer ${deleted.writer_id}`))
    assert.match(out, new RegExp(`ALTERED row id ${repriced.id} seq 13 writer ${repriced.writer_id}`))
    assert.match(out, /3 broken chains/)
  })

  it('says what it needs when there is neither DATABASE_URL nor an embedded file', () => {
    const { status, out } = verify({ RELAYKEY_DATA_DIR: join(dir, 'nowhere') })
    assert.equal(status, 2)
    assert.match(out, /DATABASE_URL/)
  })
})
