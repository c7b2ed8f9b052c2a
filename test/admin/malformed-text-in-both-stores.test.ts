// Text PostgreSQL cannot store (NUL) and malformed query values get the same 400 naming the
// field in both modes; before, PostgreSQL's own error surfaced as 500 internal_error.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { distributedEnv, setUpGovernedPartner, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'

const USDC = '0x036CbD53842c5426634e7929541eC2318f3dCF7e'
const PAY_TO = '0x209693Bc6afc0C5328bA36FaF03C514EF312287C'

const CALLS: Array<{ what: string; method: string; path: string; body?: unknown; status: number; field: string }> = [
  { what: 'a NUL in a body string', method: 'POST', path: '/admin/keys', body: { name: 'k', policy: 'p\u0000x', environment: 'production' }, status: 400, field: 'policy' },
  { what: 'a NUL in a key id', method: 'GET', path: '/admin/keys/key_%00', status: 400, field: 'id' },
  { what: 'a NUL in a policy id', method: 'GET', path: '/admin/policies/a%00', status: 400, field: 'id' },
  { what: 'a NUL in a query value', method: 'GET', path: '/admin/usage?customer=a%00', status: 400, field: 'customer' },
  { what: 'a cursor whose id is no UUID', method: 'GET', path: '/admin/audit?before=2026-11-28T05:00:00Z~------------------------------------', status: 400, field: 'before' },
  { what: 'a time before year 0', method: 'GET', path: '/admin/audit?before=-000001-01-01T00:00:00Z', status: 400, field: 'before' },
  {
    what: 'a NUL deep in payment.extra',
    method: 'POST',
    path: '/admin/policies',
    body: { name: 'paid', payment: { amount: '10000', asset: USDC, network: 'eip155:84532', pay_to: PAY_TO, facilitator_url: 'https://f.example', extra: { name: 'USDC', nested: ['ok', 'bad\u0000'] } } },
    status: 400,
    field: 'payment.extra',
  },
]

for (const mode of ['embedded', 'distributed'] as const) {
  describe(`malformed text, ${mode} mode`, () => {
    let rk: RelayKeyProcess
    let db: TestDatabase | null = null

    before(async () => {
      if (mode === 'distributed') db = await createTestDatabase()
      rk = await startRelayKey({ workers: 1, env: db === null ? {} : distributedEnv(db.url) })
      await setUpGovernedPartner(rk, { baseUrl: 'http://127.0.0.1:9/' })
    })
    after(async () => {
      await rk.stop()
      await db?.drop()
    })

    for (const call of CALLS) {
      it(`answers ${call.status} naming ${call.field} for ${call.what}`, async () => {
        const reply = await rk.admin(call.method, call.path, call.body)
        assert.equal(reply.status, call.status, JSON.stringify(reply.body))
        assert.match(reply.body.error.message, new RegExp(`^${call.field.replace('.', '\\.')}: `))
      })
    }

    it('still answers a next_before cursor it issued', async () => {
      const page = await rk.admin('GET', '/admin/audit?limit=1')
      assert.equal(page.status, 200)
      const cursor = `${new Date().toISOString()}~${'0123abcd-0000-4000-8000-0123456789ab'}`
      assert.equal((await rk.admin('GET', `/admin/audit?before=${encodeURIComponent(cursor)}`)).status, 200)
    })
  })
}
