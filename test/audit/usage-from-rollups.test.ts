// GET /admin/usage answers from the hourly rollups the audit sinks keep in each batch's
// transaction. After a mixed run through a real node (forwarded, refused by a rate limit and for
// a bad key, refunded after a 5xx, asked to pay and paid through x402), every number usage gives
// for a key, a customer, a partner or everything equals a count over the audit_events rows
// themselves, in both modes.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { distributedEnv, setUpGovernedPartner, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { MockFacilitator } from '../payments/mock-facilitator.js'
import { call, createPaidKey, header, paymentBody } from '../payments/paid-proxy-client.js'
import { payV2 } from '../payments/payer.js'
import { usageCountedFrom, type UsageColumns } from './audit-fixtures.js'

/** the columns usage is made of, and those it is filtered by, as each store returns them */
interface StoredEvent extends UsageColumns {
  key_id: string | null
  customer: string | null
  partner: string
}

interface Mode {
  name: string
  env: () => Promise<Record<string, string>>
  events: (rk: RelayKeyProcess) => Promise<StoredEvent[]>
  done: () => Promise<void>
}

let db: TestDatabase | undefined
const modes: Mode[] = [
  {
    name: 'embedded mode (SQLite)',
    env: async () => ({}),
    events: async (rk) => {
      const file = new Database(join(rk.dataDir, 'relaykey.db'), { readonly: true, fileMustExist: true })
      try {
        return file.prepare('SELECT key_id, customer, partner, outcome, status, attempts, cost, bytes_in, bytes_out, payment_tx, payment_amount FROM audit_events').all() as StoredEvent[]
      } finally {
        file.close()
      }
    },
    done: async () => {},
  },
  {
    name: 'distributed mode (PostgreSQL)',
    env: async () => {
      db = await createTestDatabase()
      return distributedEnv(db.url)
    },
    events: async () => {
      const sql = postgres(db!.url, { max: 1, onnotice: () => {} })
      try {
        const rows = await sql`SELECT key_id, customer, partner, outcome, status, attempts, cost, bytes_in, bytes_out, payment_tx, payment_amount::text FROM audit_events`
        return rows.map((r) => ({ ...r, cost: Number(r.cost), bytes_in: Number(r.bytes_in), bytes_out: Number(r.bytes_out) }) as StoredEvent)
      } finally {
        await sql.end()
      }
    },
    done: async () => { await db?.drop() },
  },
]

for (const mode of modes) {
  describe(`usage from rollups, ${mode.name}`, () => {
    let partner: MockPartner
    let facilitator: MockFacilitator
    let rk: RelayKeyProcess
    const keys: Record<string, string> = {}
    let sent = 0

    before(async () => {
      partner = await startMockPartner()
      partner.handle((req, res) => {
        const body = JSON.stringify({ url: req.url, pad: 'x'.repeat(100) })
        res.writeHead(req.url!.startsWith('/fail') ? 500 : 200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) })
        res.end(body)
      })
      facilitator = await MockFacilitator.start()
      rk = await startRelayKey({ workers: 2, env: await mode.env() })
      const budgeted = await setUpGovernedPartner(rk, { baseUrl: partner.url, customer: 'cust-a' })
      const policy = await rk.admin('PATCH', `/admin/policies/${budgeted.policyId}`, { budget: { monthly: 1000 } })
      assert.equal(policy.status, 200, JSON.stringify(policy.body))
      const limitedPolicy = await rk.admin('POST', '/admin/policies', { name: 'limited', rate_limit: { requests: 5, per_seconds: 3600 } })
      await rk.admin('POST', '/admin/bindings', { policy: limitedPolicy.body.id, partner: 'acme' })
      const limited = await rk.admin('POST', '/admin/keys', { name: 'limited', policy: limitedPolicy.body.id, environment: 'production', customer: 'cust-b' })
      assert.equal(limited.status, 201, JSON.stringify(limited.body))
      const paid = await createPaidKey(rk, 'acme', paymentBody(facilitator.url))
      keys.budgeted = budgeted.keyId
      keys.limited = limited.body.id
      keys.paid = paid.keyId

      const expect = async (status: number, path: string, key: string, headers: Record<string, string> = {}): Promise<void> => {
        const answer = await call(rk.proxyUrl, path, key, headers)
        sent++
        assert.equal(answer.status, status, `${path}: ${answer.text}`)
      }
      for (let i = 0; i < 12; i++) await expect(200, `acme/ok/${i}`, budgeted.key)
      // answered 5xx: refunded, cost 0
      for (let i = 0; i < 3; i++) await expect(500, `acme/fail/${i}`, budgeted.key)
      for (let i = 0; i < 5; i++) await expect(200, `acme/ok/${i}`, limited.body.key)
      for (let i = 0; i < 4; i++) await expect(429, `acme/ok/${i}`, limited.body.key)
      for (let i = 0; i < 3; i++) await expect(401, `acme/ok/${i}`, 'vk_not_a_key')
      for (let i = 0; i < 2; i++) {
        const offer = await call(rk.proxyUrl, `acme/paid/${i}`, paid.key)
        sent++
        assert.equal(offer.status, 402, offer.text)
        await expect(200, `acme/paid/${i}`, paid.key, { 'payment-signature': await payV2(header(offer, 'payment-required')!) })
      }
    }, { timeout: 60_000 })

    after(async () => {
      await rk?.stop()
      await partner?.close()
      await facilitator?.close()
      await mode.done()
    })

    it('equals a count over audit_events for every key, customer, partner and in all', async () => {
      let events: StoredEvent[] = []
      for (let i = 0; i < 100 && events.length < sent; i++) {
        await sleep(100)
        events = await mode.events(rk)
      }
      assert.equal(events.length, sent, 'every request has its event')
      const filters: Array<[string, (e: StoredEvent) => boolean]> = [
        ['', () => true],
        [`key_id=${keys.budgeted}`, (e) => e.key_id === keys.budgeted],
        [`key_id=${keys.limited}`, (e) => e.key_id === keys.limited],
        [`key_id=${keys.paid}`, (e) => e.key_id === keys.paid],
        ['customer=cust-a', (e) => e.customer === 'cust-a'],
        ['customer=cust-b', (e) => e.customer === 'cust-b'],
        ['partner=acme', (e) => e.partner === 'acme'],
        ['customer=cust-a&partner=acme', (e) => e.customer === 'cust-a' && e.partner === 'acme'],
      ]
      for (const [query, matches] of filters) {
        const res = await rk.admin('GET', `/admin/usage?${query}`)
        assert.equal(res.status, 200, JSON.stringify(res.body))
        const { budget: _budget, month: _month, key_id: _k, customer: _c, partner: _p, ...usage } = res.body
        assert.deepEqual(usage, usageCountedFrom(events.filter(matches)), `GET /admin/usage?${query}`)
      }
      // the run had every kind of event in it
      const all = (await rk.admin('GET', '/admin/usage')).body
      assert.equal(all.requests, sent)
      assert.deepEqual(all.blocked, { rate_limited: 4, invalid_key: 3, payment_required: 2 })
      assert.equal(all.paid.requests, 2)
      assert.equal(all.upstream_errors, 3)
      assert.ok(all.cost > 0 && all.bytes_out > 0)
      assert.ok(events.some((e) => e.status === 500 && e.cost === 0), 'a 5xx answer was refunded')
    })
  })
}
