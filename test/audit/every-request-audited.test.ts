// Every request that reaches the proxy route becomes exactly one audit event, forwarded or
// refused, and GET /admin/usage and GET /admin/audit agree with what was sent — in both modes.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import { request } from 'undici'
import { distributedEnv, startRelayKey, setUpGovernedPartner, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase } from '../helpers/postgres.js'

interface Row { outcome: string; status: number; key_id: string | null; partner: string; path: string; cost: number }

/** sends a known mix of requests; returns what each should have been recorded as */
interface Sent { expected: Map<string, number>; keyId: string; customer: string; credentialId: string }

async function sendMix (rk: RelayKeyProcess, partnerUrl: string): Promise<Sent> {
  const customer = `cust-${randomBytes(3).toString('hex')}`
  const setup = await setUpGovernedPartner(rk, {
    baseUrl: partnerUrl, customer, allow: [{ method: 'GET', path: '/ok/**' }, { method: 'POST', path: '/charge' }],
  })
  assert.equal((await rk.admin('PATCH', `/admin/policies/${setup.policyId}`, {
    budget: { monthly: 30 }, costs: [{ method: 'POST', path: '/charge', cost: 10 }],
  })).status, 200)
  assert.equal((await rk.admin('PATCH', `/admin/keys/${setup.keyId}`, { team: 'onboarding', service: 'kyc-worker' })).status, 200)
  await sleep(300)
  const send = async (path: string, headers: Record<string, string>, method = 'GET'): Promise<number> => {
    const res = await request(`${rk.proxyUrl}/proxy/${path}`, { method: method as 'GET', headers })
    await res.body.dump()
    return res.statusCode
  }
  const key = { 'x-relaykey': setup.key }
  for (let i = 0; i < 7; i++) assert.equal(await send('acme/ok/item', key), 200)
  assert.equal(await send('acme/ok/fail500', key), 500)
  assert.equal(await send('acme/ok/x', {}), 401) // missing_key
  for (let i = 0; i < 2; i++) assert.equal(await send('acme/ok/x', { 'x-relaykey': 'vk_bad' }), 401) // invalid_key
  assert.equal(await send('acme/other', key), 403) // endpoint_not_allowed
  assert.equal(await send('nobody/x', key), 404) // unknown_partner
  assert.equal(await send('acme/ok/a%2fb', key), 400) // invalid_path
  for (let i = 0; i < 3; i++) await send('acme/charge', key, 'POST') // 7 + 10 + 10 = 27; a third would make 37 > 30
  const expected = new Map([
    ['forwarded', 7 + 1 + 2], ['missing_key', 1], ['invalid_key', 2], ['endpoint_not_allowed', 1],
    ['unknown_partner', 1], ['invalid_path', 1], ['budget_exceeded', 1],
  ])
  return { expected, keyId: setup.keyId, customer, credentialId: setup.credentialId }
}

function tally (rows: Row[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const r of rows) out.set(r.outcome, (out.get(r.outcome) ?? 0) + 1)
  return out
}

async function checkApis (rk: RelayKeyProcess, { keyId, customer, credentialId }: Sent, rows: Row[]): Promise<void> {
  const forKey = rows.filter((r) => r.key_id === keyId)
  const usage = await rk.admin('GET', `/admin/usage?key_id=${keyId}`)
  assert.equal(usage.status, 200, JSON.stringify(usage.body))
  assert.equal(usage.body.requests, forKey.length)
  assert.equal(usage.body.forwarded, 10)
  assert.equal(usage.body.upstream_errors, 1)
  assert.deepEqual(usage.body.blocked, { endpoint_not_allowed: 1, unknown_partner: 1, invalid_path: 1, budget_exceeded: 1 })
  assert.equal(usage.body.cost, 27) // 7 GETs + 2 charges of 10; the 500 was refunded
  assert.deepEqual(usage.body.budget, { limit: 30, used: 27, remaining: 3 })
  const byCustomer = await rk.admin('GET', `/admin/usage?customer=${customer}`)
  assert.equal(byCustomer.body.requests, forKey.length)
  const page = await rk.admin('GET', `/admin/audit?key_id=${keyId}&limit=5`)
  assert.equal(page.status, 200)
  assert.equal(page.body.events.length, 5)
  // paging with next_before visits every event exactly once
  const seen = new Set<string>()
  let cursor: string | null = null
  do {
    const pageOf: { status: number; body: any } = await rk.admin('GET', `/admin/audit?key_id=${keyId}&limit=3${cursor === null ? '' : `&before=${encodeURIComponent(cursor)}`}`)
    assert.equal(pageOf.status, 200, JSON.stringify(pageOf.body))
    for (const e of pageOf.body.events as Array<{ id: string }>) {
      assert.ok(!seen.has(e.id), 'an event came twice')
      seen.add(e.id)
    }
    cursor = pageOf.body.next_before
  } while (cursor !== null)
  assert.equal(seen.size, forKey.length)
  const all = await rk.admin('GET', `/admin/audit?key_id=${keyId}&limit=1000`)
  assert.equal(all.body.events.length, forKey.length)
  assert.ok(all.body.events[0].ts >= all.body.events.at(-1).ts, 'newest first')
  assert.equal(all.body.events.filter((e: Row) => e.outcome === 'forwarded').length, 10)
  // every event of the key is attributed to its customer, team, service and environment; the
  // forwarded ones also to the partner and the credential that carried them
  for (const e of all.body.events) {
    assert.deepEqual([e.customer, e.team, e.service, e.environment], [customer, 'onboarding', 'kyc-worker', 'production'], JSON.stringify(e))
    if (e.outcome === 'forwarded') assert.deepEqual([e.partner, e.credential_id], ['acme', credentialId], JSON.stringify(e))
  }
}

describe('every request is audited', () => {
  it('embedded mode: SQLite rows equal requests, by outcome; usage and audit APIs agree', async () => {
    const partner = await startMockPartner()
    partner.handle((req, res) => { res.writeHead(req.url!.includes('fail500') ? 500 : 200); res.end('{}') })
    const rk = await startRelayKey({ workers: 2 })
    try {
      const sent = await sendMix(rk, partner.url)
      await sleep(500) // flush interval 100 ms
      const db = new Database(join(rk.dataDir, 'relaykey.db'), { readonly: true })
      const rows = db.prepare('SELECT outcome, status, key_id, partner, path, cost FROM audit_events').all() as Row[]
      db.close()
      assert.deepEqual(tally(rows), sent.expected)
      await checkApis(rk, sent, rows)
    } finally {
      assert.equal(await rk.stop(), 0)
      await partner.close()
    }
  })

  it('distributed mode: PostgreSQL rows equal requests, none lost on SIGTERM', async () => {
    const db = await createTestDatabase()
    const partner = await startMockPartner()
    partner.handle((req, res) => { res.writeHead(req.url!.includes('fail500') ? 500 : 200); res.end('{}') })
    const rk = await startRelayKey({
      workers: 2,
      env: distributedEnv(db.url),
    })
    const sql = postgres(db.url, { max: 1, onnotice: () => {} })
    try {
      const sent = await sendMix(rk, partner.url)
      await sleep(500)
      const rows = await sql<Row[]>`SELECT outcome, status, key_id, partner, path, cost::int AS cost FROM audit_events`
      assert.deepEqual(tally(rows), sent.expected)
      await checkApis(rk, sent, rows)
      // a burst right before SIGTERM: every one of them is in the table after the exit
      const before = rows.length
      const burst = await Promise.all(Array.from({ length: 200 }, () =>
        request(`${rk.proxyUrl}/proxy/acme/ok/x`, { headers: { 'x-relaykey': 'vk_bad' } }).then((r) => r.body.dump())))
      assert.equal(burst.length, 200)
      assert.equal(await rk.stop(), 0)
      const [{ n }] = await sql<[{ n: number }]>`SELECT count(*)::int AS n FROM audit_events`
      assert.equal(n, before + 200)
    } finally {
      await rk.stop()
      await sql.end()
      await partner.close()
      await db.drop()
    }
  })

  it('a client that leaves once the partner has its request leaves an event (499 client_closed) and is charged: leaving early never bypasses a budget', async () => {
    const partner = await startMockPartner()
    partner.handle((_req, res) => { setTimeout(() => res.end('late'), 1500) })
    const rk = await startRelayKey({ workers: 2 })
    try {
      const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
      assert.equal((await rk.admin('PATCH', `/admin/policies/${setup.policyId}`, { budget: { monthly: 30 }, costs: [{ method: 'GET', path: '/slow/*', cost: 10 }] })).status, 200)
      await sleep(300)
      // each client hangs up as soon as the partner has its request
      for (let i = 0; i < 3; i++) {
        const reached = partner.received.length + 1
        const controller = new AbortController()
        const pending = request(`${rk.proxyUrl}/proxy/acme/slow/${i}`, { headers: { 'x-relaykey': setup.key }, signal: controller.signal })
        while (partner.received.length < reached) await sleep(10)
        controller.abort()
        await assert.rejects(pending)
      }
      // the budget is spent: the partner did the work three times
      const refused = await request(`${rk.proxyUrl}/proxy/acme/slow/3`, { headers: { 'x-relaykey': setup.key } })
      assert.equal(refused.statusCode, 429)
      assert.equal((await refused.body.json() as { error: { code: string } }).error.code, 'budget_exceeded')
      let events: Row[] = []
      for (let i = 0; i < 40 && events.filter((e) => e.outcome === 'client_closed').length < 3; i++) {
        await sleep(100)
        events = (await rk.admin('GET', `/admin/audit?key_id=${setup.keyId}`)).body.events
      }
      const left = events.filter((e) => e.outcome === 'client_closed')
      assert.equal(left.length, 3)
      for (const e of left) {
        assert.equal(e.status, 499)
        assert.equal(e.cost, 10)
      }
      assert.equal(partner.received.length, 3)
      const usage = await rk.admin('GET', `/admin/usage?key_id=${setup.keyId}`)
      assert.deepEqual(usage.body.budget, { limit: 30, used: 30, remaining: 0 })
      assert.equal(usage.body.cost, 30)
    } finally {
      await rk.stop()
      await partner.close()
    }
  })
  it('a client that leaves while a retry waits, after the partner reset the connection, is not charged: the partner failed that attempt', async () => {
    const partner = await startMockPartner()
    // the partner reads the request, then resets the connection without answering
    partner.handle((req) => { req.socket.resetAndDestroy() })
    const rk = await startRelayKey({ workers: 1 })
    try {
      const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
      assert.equal((await rk.admin('PATCH', '/admin/partners/acme', { retry: { max_attempts: 3, base_delay_ms: 1500, max_delay_ms: 1500 } })).status, 200)
      assert.equal((await rk.admin('PATCH', `/admin/policies/${setup.policyId}`, { budget: { monthly: 100 }, costs: [{ method: 'GET', path: '/flaky', cost: 10 }] })).status, 200)
      await sleep(300)
      const controller = new AbortController()
      const pending = request(`${rk.proxyUrl}/proxy/acme/flaky`, { headers: { 'x-relaykey': setup.key }, signal: controller.signal })
      while (partner.received.length < 1) await sleep(10)
      // the reset comes at once, and RelayKey waits before its retry (full jitter, up to 1.5 s):
      // the client leaves then
      await sleep(30)
      controller.abort()
      await assert.rejects(pending)
      let events: Row[] = []
      for (let i = 0; i < 40 && events.length === 0; i++) {
        await sleep(100)
        events = (await rk.admin('GET', `/admin/audit?key_id=${setup.keyId}`)).body.events
      }
      assert.equal(events.length, 1)
      assert.equal(events[0]!.outcome, 'client_closed')
      // a jittered delay under 30 ms (2 % of runs) sends the retry first: when the client leaves
      // while that attempt is in flight it reached the partner and is charged, by the same rule;
      // when its reset came first it is refunded like the first
      const charged = events[0]!.cost as number
      if (partner.received.length === 1) assert.equal(charged, 0)
      else assert.ok(charged === 0 || charged === 10, `cost ${charged}`)
      const usage = await rk.admin('GET', `/admin/usage?key_id=${setup.keyId}`)
      assert.deepEqual(usage.body.budget, { limit: 100, used: charged, remaining: 100 - charged })
    } finally {
      await rk.stop()
      await partner.close()
    }
  })
})
