// The change log has the audit trail's protections, in both stores: the application cannot
// rewrite or delete a change, and `relaykey audit verify` finds one changed or removed by
// someone who could (a superuser with the triggers off, a hand-edited SQLite file).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { runAuditVerify } from '../helpers/audit-verify-cli.js'
import { asRole } from '../audit/audit-fixtures.js'
import { runMigrations } from '../../src/store/postgres/migrate.js'
import { PostgresControlStore } from '../../src/store/postgres/postgres-control-store.js'
import { openSqliteControlStore } from '../../src/store/sqlite/sqlite-control-store.js'
import type { ControlStore } from '../../src/store/control-store.js'

async function appendThree (store: ControlStore): Promise<void> {
  for (const [i, action] of (['create', 'update', 'delete'] as const).entries()) {
    const change = await store.appendChange({
      request_id: `req-${i}`, token_name: 'ops', action, resource_type: 'policy', resource_id: 'pol_1',
      changes: { name: { ...(action === 'create' ? {} : { from: 'a' }), ...(action === 'delete' ? {} : { to: 'b' }) } },
    })
    assert.equal(change.seq, i + 1)
  }
}

describe('change log on SQLite (embedded mode)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'relaykey-changes-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('refuses UPDATE and DELETE; verify says intact, then names the altered change', async () => {
    const store = openSqliteControlStore(join(dir, 'relaykey.db'))
    await appendThree(store)
    await store.close()
    assert.match(runAuditVerify({ RELAYKEY_DATA_DIR: dir }).out, /admin changes: 3 changes, last seq 3, intact/)
    const db = new Database(join(dir, 'relaykey.db'))
    assert.throws(() => db.prepare('UPDATE admin_changes SET token_name = ? WHERE seq = 2').run('someone-else'), /append-only/)
    assert.throws(() => db.prepare('DELETE FROM admin_changes WHERE seq = 2').run(), /append-only/)
    assert.throws(() => db.prepare('INSERT OR REPLACE INTO admin_changes SELECT * FROM admin_changes WHERE seq = 2').run(), /append-only/)
    // someone with the file in hand
    db.exec('DROP TRIGGER admin_changes_no_update')
    db.prepare('UPDATE admin_changes SET token_name = ? WHERE seq = 2').run('someone-else')
    db.close()
    const verify = runAuditVerify({ RELAYKEY_DATA_DIR: dir })
    assert.equal(verify.status, 1, verify.out)
    assert.match(verify.out, /admin changes: 3 changes, last seq 3, ALTERED change seq 2/)
  })
})

describe('change log on PostgreSQL (distributed mode)', () => {
  let db: TestDatabase
  let admin: postgres.Sql
  before(async () => {
    db = await createTestDatabase()
    await runMigrations(db.url)
    admin = postgres(db.url, { max: 1, onnotice: () => {} })
  })
  after(async () => {
    await admin.end()
    await db.drop()
  })

  it('the application role may insert and read only; the triggers stop even the owner; verify finds a removed change', async () => {
    const app = postgres(asRole(db.url, 'relaykey_app'), { max: 2, onnotice: () => {} })
    try {
      await appendThree(new PostgresControlStore(app))
      await assert.rejects(app`UPDATE admin_changes SET token_name = 'x' WHERE seq = 2`, /permission denied/)
      await assert.rejects(app`DELETE FROM admin_changes WHERE seq = 2`, /permission denied/)
      await assert.rejects(app`TRUNCATE admin_changes`, /permission denied|must be owner/)
    } finally {
      await app.end()
    }
    await assert.rejects(admin`UPDATE admin_changes SET token_name = 'x' WHERE seq = 2`, /append-only/)
    assert.match(runAuditVerify({ DATABASE_URL: db.url }).out, /admin changes: 3 changes, last seq 3, intact/)
    await admin`ALTER TABLE admin_changes DISABLE TRIGGER admin_changes_append_only`
    await admin`DELETE FROM admin_changes WHERE seq = 2`
    const verify = runAuditVerify({ DATABASE_URL: db.url })
    assert.equal(verify.status, 1, verify.out)
    assert.match(verify.out, /MISSING change seq 2/)
  })
})
