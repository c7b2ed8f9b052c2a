// A node that cannot bring the database's schema up to date refuses to start with one line that
// says migrations are pending, names them, and says what to run: not "permission denied for
// schema public" from the application role's first CREATE TABLE.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { createTestDatabase, POSTGRES_ADMIN_URL, type TestDatabase } from '../helpers/postgres.js'
import { distributedEnv } from '../helpers/relaykey-process.js'
import { asRole } from '../audit/audit-fixtures.js'
import { MIGRATIONS_DIR, runMigrations } from '../../src/store/postgres/migrate.js'

const CLI = new URL('../../src/cli.js', import.meta.url).pathname
const MIGRATIONS = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql')).sort()

function serve (env: Record<string, string>): { status: number | null; stderr: string } {
  const cwd = mkdtempSync(join(tmpdir(), 'relaykey-pending-'))
  const run = spawnSync(process.execPath, [CLI, 'serve'], { cwd, env: { PATH: process.env.PATH ?? '', RELAYKEY_PORT: '0', RELAYKEY_ADMIN_PORT: '0', ...env }, encoding: 'utf8', timeout: 20_000 })
  rmSync(cwd, { recursive: true, force: true })
  return { status: run.status, stderr: run.stderr }
}

describe('pending migrations are named at start', () => {
  let db: TestDatabase
  const role = `rk_plain_${randomBytes(4).toString('hex')}`
  const admin = postgres(POSTGRES_ADMIN_URL, { max: 1, onnotice: () => {} })

  before(async () => {
    db = await createTestDatabase()
    await admin.unsafe(`CREATE ROLE ${role} LOGIN`)
  })
  after(async () => {
    await db.drop()
    await admin.unsafe(`DROP ROLE IF EXISTS ${role}`)
    await admin.end()
  })

  it('a role that may not create tables, on a fresh database: every migration named, and the command to run', () => {
    const { status, stderr } = serve(distributedEnv(asRole(db.url, role)))
    assert.equal(status, 1, stderr)
    const lines = stderr.trim().split('\n')
    assert.equal(lines.length, 1, stderr)
    assert.match(lines[0]!, new RegExp(`^relaykey: ${MIGRATIONS.length} migrations are pending \\(${MIGRATIONS.join(', ')}\\) and role ${role} may not apply them \\(permission denied for schema public\\): apply them with \`npx relaykey migrate\``))
  })

  it('a database it cannot reach is not called pending migrations', () => {
    const url = new URL(db.url)
    url.port = '1' // nothing listens there
    const { status, stderr } = serve(distributedEnv(url.toString(), { extra: { RELAYKEY_AUTO_MIGRATE: 'false' } }))
    assert.equal(status, 1, stderr)
    assert.doesNotMatch(stderr, /pending/)
    assert.match(stderr, /ECONNREFUSED/)
  })

  it('RELAYKEY_AUTO_MIGRATE=false with the last migration not applied: that one is named', async () => {
    await runMigrations(db.url)
    const last = MIGRATIONS.at(-1)!
    const sql = postgres(db.url, { max: 1, onnotice: () => {} })
    await sql`DELETE FROM schema_migrations WHERE name = ${last}`
    await sql.end()
    const { status, stderr } = serve(distributedEnv(db.url, { extra: { RELAYKEY_AUTO_MIGRATE: 'false' } }))
    assert.equal(status, 1, stderr)
    assert.equal(stderr.trim(), `relaykey: 1 migration is pending (${last}) and RELAYKEY_AUTO_MIGRATE is false: apply them with \`npx relaykey migrate\` and an administrator's DATABASE_URL, then start RelayKey again`)
  })
})
