// The production setup of docs/operations.md: migrations as the administrator, RelayKey itself
// as relaykey_app (only INSERT/SELECT on audit_events) — with auto-migrate left on.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import postgres from 'postgres'
import { request } from 'undici'
import { runMigrations } from '../../src/store/postgres/migrate.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { distributedEnv, setUpGovernedPartner, startRelayKey } from '../helpers/relaykey-process.js'
import { startMockPartner } from '../helpers/mock-partner.js'

function asAppRole (url: string): string {
  const u = new URL(url)
  u.username = 'relaykey_app'
  u.password = ''
  return u.toString()
}

describe('running as the application role', () => {
  it('starts with nothing pending, serves, audits, and cannot change the audit trail', async () => {
    const db = await createTestDatabase()
    const partner = await startMockPartner()
    try {
      assert.ok((await runMigrations(db.url)).length >= 4)
      const appUrl = asAppRole(db.url)
      assert.deepEqual(await runMigrations(appUrl), [], 'nothing pending: no lock, no DDL needed')
      const rk = await startRelayKey({ workers: 1, env: distributedEnv(appUrl) })
      try {
        const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
        const res = await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': setup.key } })
        assert.equal(res.statusCode, 200)
        await res.body.dump()
        await sleep(400)
        const app = postgres(appUrl, { max: 1, onnotice: () => {} })
        try {
          const [{ n }] = await app<[{ n: number }]>`SELECT count(*)::int AS n FROM audit_events`
          assert.equal(n, 1)
          await assert.rejects(app`UPDATE audit_events SET status = 200`)
          await assert.rejects(app`DELETE FROM audit_events`)
        } finally {
          await app.end()
        }
      } finally {
        assert.equal(await rk.stop(), 0)
      }
    } finally {
      await partner.close()
      await db.drop()
    }
  })
})
