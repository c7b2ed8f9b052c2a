// The SQLite control store: the shared contract on a temp file, plus what only SQLite has —
// the user_version schema list (including upgrading an older file) and several processes
// opening one fresh file at once.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { openSqliteControlStore } from '../../src/store/sqlite/sqlite-control-store.js'
import { applySqliteSchema, openSqliteDatabase, SQLITE_MIGRATIONS } from '../../src/store/sqlite/schema.js'
import { parsePartnerCreate } from '../../src/admin/validate-partner.js'
import { runControlStoreContract } from './control-store.contract.js'

async function tempDir (): Promise<string> {
  return mkdtemp(join(tmpdir(), 'relaykey-sqlite-'))
}

runControlStoreContract('sqlite', async () => {
  const dir = await tempDir()
  const store = openSqliteControlStore(join(dir, 'relaykey.db'))
  return {
    store,
    async cleanup () {
      await store.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
})

describe('sqlite control-plane file', () => {
  it('reads a partner stored before a setting existed with that setting\'s default', async (t) => {
    const dir = await tempDir()
    const file = join(dir, 'relaykey.db')
    const store = openSqliteControlStore(file)
    t.after(async () => { await store.close(); await rm(dir, { recursive: true, force: true }) })
    await store.createPartner(parsePartnerCreate({ slug: 'old', base_urls: { production: 'http://127.0.0.1:9' }, auth: { type: 'header', name: 'X-Key' } }))
    const db = new Database(file)
    db.prepare(`UPDATE partners SET retry = ?, circuit_breaker = ? WHERE slug = 'old'`).run('{"max_attempts":3,"base_delay_ms":100,"max_delay_ms":2000,"on_status":[503],"respect_retry_after":true}', '{"failure_threshold":5,"open_ms":30000}')
    db.close()
    const partner = (await store.getPartner('old'))!
    assert.equal(partner.retry.max_attempts, 3)
    assert.equal(partner.retry.budget_percent, 20)
    assert.equal(partner.retry.budget_min_per_second, 3)
    assert.equal(partner.circuit_breaker.max_in_flight, 1000)
  })

  it('opens in WAL mode with foreign keys on and the schema at the latest version', async (t) => {
    const dir = await tempDir()
    t.after(() => rm(dir, { recursive: true, force: true }))
    const db = openSqliteDatabase(join(dir, 'a.db'))
    t.after(() => db.close())
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
    assert.equal(db.pragma('foreign_keys', { simple: true }), 1)
    assert.equal(db.pragma('busy_timeout', { simple: true }), 5000)
    assert.equal(db.pragma('user_version', { simple: true }), SQLITE_MIGRATIONS.length)
  })

  it('applies each migration once: reopening the file runs nothing', async (t) => {
    const dir = await tempDir()
    t.after(() => rm(dir, { recursive: true, force: true }))
    openSqliteDatabase(join(dir, 'a.db')).close()
    const db = new Database(join(dir, 'a.db'))
    t.after(() => db.close())
    assert.equal(applySqliteSchema(db), 0)
    assert.equal(applySqliteSchema(db, [...SQLITE_MIGRATIONS, 'CREATE TABLE later (x TEXT) STRICT']), 1)
    assert.equal(db.pragma('user_version', { simple: true }), SQLITE_MIGRATIONS.length + 1)
  })

  it('upgrades a version 1 file in place: its policies stay and fail closed', async (t) => {
    const dir = await tempDir()
    t.after(() => rm(dir, { recursive: true, force: true }))
    const file = join(dir, 'v1.db')
    const old = new Database(file)
    old.pragma('foreign_keys = ON')
    applySqliteSchema(old, SQLITE_MIGRATIONS.slice(0, 1))
    assert.equal(old.pragma('user_version', { simple: true }), 1)
    // a row as the version 1 store wrote it, and a key using it
    const at = '2030-01-02T03:04:05.678Z'
    old.prepare(`INSERT INTO policies (id, name, rate_limit, customer_rate_limit, budget, customer_budget, costs, allow, payment,
        created_at, updated_at) VALUES (?, ?, ?, NULL, ?, NULL, ?, ?, NULL, ?, ?)`)
      .run('pol_v1', 'legacy', '{"requests":10,"per_seconds":1,"burst":20}', '{"monthly":500}',
        '[{"method":"POST","path":"/x","cost":3}]', '[]', at, at)
    old.prepare(`INSERT INTO virtual_keys (id, name, policy_id, environment, prefix, created_at, updated_at)
      VALUES ('key_v1', 'k', 'pol_v1', 'sandbox', 'vk_v1', ?, ?)`).run(at, at)
    old.prepare('INSERT INTO key_hashes (hash, key_id, created_at) VALUES (?, ?, ?)').run(Buffer.from('v1-hash'), 'key_v1', at)
    old.close()

    const store = openSqliteControlStore(file)
    t.after(() => store.close())
    const expected = {
      id: 'pol_v1',
      name: 'legacy',
      rate_limit: { requests: 10, per_seconds: 1, burst: 20 },
      customer_rate_limit: null,
      budget: { monthly: 500 },
      customer_budget: null,
      costs: [{ method: 'POST', path: '/x', cost: 3 }],
      allow: [],
      payment: null,
      on_governance_failure: 'deny',
      max_in_flight: null,
      customer_max_in_flight: null,
      created_at: at,
      updated_at: at,
    }
    assert.deepEqual(await store.getPolicy('legacy'), expected)
    assert.deepEqual((await store.resolveKey(Buffer.from('v1-hash')))?.policy, expected)
    assert.equal((await store.updatePolicy('pol_v1', { on_governance_failure: 'allow' }))?.on_governance_failure, 'allow')

    const db = new Database(file)
    t.after(() => db.close())
    assert.equal(db.pragma('user_version', { simple: true }), SQLITE_MIGRATIONS.length)
    assert.throws(() => db.prepare("UPDATE policies SET on_governance_failure = 'open'").run(), /CHECK constraint/)
  })

  it('refuses a file whose schema is newer than this code', async (t) => {
    const dir = await tempDir()
    t.after(() => rm(dir, { recursive: true, force: true }))
    const db = new Database(join(dir, 'a.db'))
    t.after(() => db.close())
    db.pragma(`user_version = ${SQLITE_MIGRATIONS.length + 5}`)
    assert.throws(() => applySqliteSchema(db), /newer/)
  })

  it('lets several processes open one fresh file at the same moment', async (t) => {
    const dir = await tempDir()
    t.after(() => rm(dir, { recursive: true, force: true }))
    const file = join(dir, 'shared.db')
    const moduleUrl = new URL('../../src/store/sqlite/sqlite-control-store.js', import.meta.url).href
    const startAt = Date.now() + 400
    // Each child sleeps until the same instant, so they race to create the schema.
    const child = `
      const [file, moduleUrl, startAt, slug] = process.argv.slice(1)
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(startAt) - Date.now())))
      const { openSqliteControlStore } = await import(moduleUrl)
      const store = openSqliteControlStore(file)
      await store.createPartner({
        slug, base_urls: { sandbox: 'https://x.test' }, auth: { type: 'bearer' },
        timeouts: { connect_ms: 1, request_ms: 1 },
        retry: { max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1, on_status: [], respect_retry_after: false },
        circuit_breaker: { failure_threshold: 1, open_ms: 1 },
      })
      await store.close()
    `
    const slugs = ['p0', 'p1', 'p2', 'p3']
    const exits = await Promise.all(slugs.map((slug) => new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const proc = spawn(process.execPath, ['--input-type=module', '-e', child, file, moduleUrl, String(startAt), slug])
      let stderr = ''
      proc.stderr.on('data', (chunk) => { stderr += chunk })
      proc.on('close', (code) => resolve({ code, stderr }))
    })))
    for (const exit of exits) assert.equal(exit.code, 0, exit.stderr)
    const store = openSqliteControlStore(file)
    t.after(() => store.close())
    assert.deepEqual((await store.listPartners()).map((p) => p.slug), slugs)
  })
})
