// `npx relaykey migrate` and scripts/migrate.sh as an operator runs them.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import postgres from 'postgres'
import { createTestDatabase } from '../helpers/postgres.js'

const ROOT = new URL('../../../', import.meta.url).pathname

function run (command: string, args: string[], env: Record<string, string>): { status: number | null; out: string } {
  const result = spawnSync(command, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' })
  return { status: result.status, out: result.stdout + result.stderr }
}

describe('migrate command', () => {
  it('applies migrations once, then reports up to date; needs only DATABASE_URL', async () => {
    const db = await createTestDatabase()
    try {
      const first = run(process.execPath, ['bin/relaykey.js', 'migrate'], { DATABASE_URL: db.url })
      assert.equal(first.status, 0, first.out)
      assert.match(first.out, /migrations applied: 0001_control_plane\.sql/)
      const second = run('bash', ['scripts/migrate.sh'], { DATABASE_URL: db.url })
      assert.equal(second.status, 0, second.out)
      assert.match(second.out, /up to date/)
      const sql = postgres(db.url, { max: 1 })
      const tables = await sql`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`
      await sql.end()
      assert.ok(tables.map((t) => t.tablename).includes('virtual_keys'))
    } finally {
      await db.drop()
    }
  })

  it('refuses to run without DATABASE_URL, naming it', () => {
    const result = run(process.execPath, ['bin/relaykey.js', 'migrate'], {})
    assert.equal(result.status, 2)
    assert.match(result.out, /DATABASE_URL/)
  })
})
