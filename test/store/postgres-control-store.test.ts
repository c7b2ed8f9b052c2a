// The PostgreSQL control store: the shared contract on a fresh database, plus the migration
// runner (idempotent, safe when several nodes start at once, all-or-nothing per file).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { postgresSocket } from '../../src/store/postgres/postgres-socket.js'
import { MIGRATIONS_DIR, runMigrations } from '../../src/store/postgres/migrate.js'
import { openPostgresControlStore, PostgresControlStore } from '../../src/store/postgres/postgres-control-store.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { parsePartnerCreate } from '../../src/admin/validate-partner.js'
import { runControlStoreContract } from './control-store.contract.js'

const ALL_MIGRATIONS = [
  '0001_control_plane.sql', '0002_policy_governance_failure.sql', '0003_audit_events.sql', '0004_app_role_reads_migrations.sql',
  '0005_audit_payment_amount.sql', '0006_audit_query_indexes.sql', '0007_audit_blocks.sql', '0008_audit_usage_hourly.sql', '0009_policy_max_in_flight.sql', '0010_audit_lean_table.sql', '0011_partner_auth_schemes.sql', '0012_fingerprints_and_admin_changes.sql',
]

runControlStoreContract('postgres', async () => {
  const db = await createTestDatabase()
  await runMigrations(db.url)
  const store = openPostgresControlStore(db.url, { max: 4, socket: postgresSocket({ stallMs: 10_000 }) })
  return {
    store,
    async cleanup () {
      await store.close()
      await db.drop()
    },
  }
})

describe('postgres migrations', () => {
  it('reads a partner stored before a setting existed with that setting\'s default', async (t) => {
    const db = await createTestDatabase()
    await runMigrations(db.url)
    const store = openPostgresControlStore(db.url, { max: 4, socket: postgresSocket({ stallMs: 10_000 }) })
    const sql = postgres(db.url, { max: 1, onnotice: () => {} })
    t.after(async () => { await store.close(); await sql.end(); await db.drop() })
    await store.createPartner(parsePartnerCreate({ slug: 'old', base_urls: { production: 'http://127.0.0.1:9' }, auth: { type: 'header', name: 'X-Key' } }))
    await sql.unsafe(`UPDATE partners SET retry = '{"max_attempts":3,"base_delay_ms":100,"max_delay_ms":2000,"on_status":[503],"respect_retry_after":true}'::jsonb, circuit_breaker = '{"failure_threshold":5,"open_ms":30000}'::jsonb WHERE slug = 'old'`)
    const partner = (await store.getPartner('old'))!
    assert.equal(partner.retry.max_attempts, 3)
    assert.equal(partner.retry.budget_percent, 20)
    assert.equal(partner.retry.budget_min_per_second, 3)
    assert.equal(partner.circuit_breaker.max_in_flight, 1000)
  })

  it('finds migrations/ from the compiled module', () => {
    assert.ok(existsSync(join(MIGRATIONS_DIR, '0001_control_plane.sql')), MIGRATIONS_DIR)
  })

  it('applies every file once; a second run is a no-op', async (t) => {
    const db = await createTestDatabase()
    t.after(() => db.drop())
    assert.deepEqual(await runMigrations(db.url), ALL_MIGRATIONS)
    assert.deepEqual(await runMigrations(db.url), [])
    const sql = postgres(db.url, { max: 1, onnotice: () => {} })
    t.after(() => sql.end())
    const rows = await sql<Array<{ name: string }>>`SELECT name FROM schema_migrations ORDER BY name`
    assert.deepEqual(rows.map((r) => r.name), ALL_MIGRATIONS)
  })

  it('lets two nodes migrate at once: both succeed and each file is applied once', async (t) => {
    const db = await createTestDatabase()
    t.after(() => db.drop())
    const [a, b] = await Promise.all([runMigrations(db.url), runMigrations(db.url)])
    assert.deepEqual([...a, ...b].sort(), ALL_MIGRATIONS)
  })

  it('upgrades a database at 0001: its policies stay and fail closed', async (t) => {
    const db = await createTestDatabase()
    const dir = await mkdtemp(join(tmpdir(), 'relaykey-migrations-'))
    t.after(async () => {
      await db.drop()
      await rm(dir, { recursive: true, force: true })
    })
    await copyFile(join(MIGRATIONS_DIR, '0001_control_plane.sql'), join(dir, '0001_control_plane.sql'))
    assert.deepEqual(await runMigrations(db.url, dir), ['0001_control_plane.sql'])
    const sql = postgres(db.url, { max: 1, onnotice: () => {} })
    t.after(() => sql.end())
    // a row as the 0001 store wrote it
    await sql`
      INSERT INTO policies (id, name, rate_limit, budget, costs, allow)
      VALUES ('pol_v1', 'legacy', ${sql.json({ requests: 10, per_seconds: 1, burst: 20 })}, ${sql.json({ monthly: 500 })},
              ${sql.json([{ method: 'POST', path: '/x', cost: 3 }])}, ${sql.json([])})`

    assert.deepEqual(await runMigrations(db.url), ALL_MIGRATIONS.slice(1))
    const store = new PostgresControlStore(sql)
    const policy = await store.getPolicy('legacy')
    assert.ok(policy !== null)
    assert.deepEqual({ ...policy, created_at: undefined, updated_at: undefined }, {
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
      created_at: undefined,
      updated_at: undefined,
    })
    assert.equal((await store.updatePolicy('pol_v1', { on_governance_failure: 'allow' }))?.on_governance_failure, 'allow')
    await assert.rejects(sql`UPDATE policies SET on_governance_failure = 'open'`,
      (err: { constraint_name?: string }) => err.constraint_name === 'policies_on_governance_failure_mode')
  })

  it('rolls a failing file back whole and stops there', async (t) => {
    const db = await createTestDatabase()
    const dir = await mkdtemp(join(tmpdir(), 'relaykey-migrations-'))
    t.after(async () => {
      await db.drop()
      await rm(dir, { recursive: true, force: true })
    })
    await writeFile(join(dir, '0001_ok.sql'), 'CREATE TABLE one (x int);')
    await writeFile(join(dir, '0002_broken.sql'), 'CREATE TABLE two (x int);\nSELECT no_such_function();')
    await writeFile(join(dir, '0003_after.sql'), 'CREATE TABLE three (x int);')
    await assert.rejects(runMigrations(db.url, dir), /0002_broken\.sql/)
    const sql = postgres(db.url, { max: 1, onnotice: () => {} })
    t.after(() => sql.end())
    const tables = await sql<Array<{ name: string }>>`
      SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = 'public' ORDER BY table_name`
    assert.deepEqual(tables.map((r) => r.name), ['one', 'schema_migrations'])
    await writeFile(join(dir, '0002_broken.sql'), 'CREATE TABLE two (x int);')
    assert.deepEqual(await runMigrations(db.url, dir), ['0002_broken.sql', '0003_after.sql'])
  })
})

describe('postgres control store with a shared client', () => {
  it('leaves a client it does not own open on close()', async (t) => {
    const db = await createTestDatabase()
    t.after(() => db.drop())
    await runMigrations(db.url)
    const sql = postgres(db.url, { max: 2, onnotice: () => {} })
    t.after(() => sql.end())
    const store = new PostgresControlStore(sql)
    await store.ping()
    await store.close()
    assert.deepEqual([...await sql`SELECT 1 AS one`], [{ one: 1 }])
  })
})
