// A policy's max_in_flight (per key) and customer_max_in_flight (all of a customer's keys): one
// key, or one customer, cannot hold every slot of a partner that other keys share. Beyond its
// cap a request gets 429 concurrency_limited with Retry-After before any limit is spent; the
// slots come back as answers end. One worker, so the node's cap is exact (each worker holds
// ceil(n / workers) of it).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { setUpGovernedPartner, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'

interface Answer { status: number; code: string | undefined; retryAfter: string | undefined }

async function call (rk: RelayKeyProcess, key: string, path: string): Promise<Answer> {
  const res = await request(`${rk.proxyUrl}/proxy/acme/${path}`, { headers: { 'x-relaykey': key } })
  const text = await res.body.text()
  let code: string | undefined
  try { code = JSON.parse(text)?.error?.code } catch {}
  return { status: res.statusCode, code, retryAfter: res.headers['retry-after'] as string | undefined }
}

async function newKey (rk: RelayKeyProcess, policy: string, customer: string): Promise<{ id: string; key: string }> {
  const res = await rk.admin('POST', '/admin/keys', { name: `k-${customer}`, policy, environment: 'production', customer })
  assert.equal(res.status, 201, JSON.stringify(res.body))
  return { id: res.body.id, key: res.body.key }
}

describe('max_in_flight per key and per customer', () => {
  let partner: MockPartner
  let rk: RelayKeyProcess
  const held: ServerResponse[] = []
  let keyCapped: { id: string; key: string }
  let other: { id: string; key: string }
  let customerKeys: Array<{ id: string; key: string }>

  before(async () => {
    partner = await startMockPartner()
    partner.handle((req, res) => {
      if (req.url!.startsWith('/hold')) held.push(res)
      else res.end('ok')
    })
    rk = await startRelayKey({ workers: 1 })
    const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url, customer: 'solo' })
    assert.equal((await rk.admin('PATCH', `/admin/policies/${setup.policyId}`, { max_in_flight: 2, budget: { monthly: 1000 } })).status, 200)
    keyCapped = { id: setup.keyId, key: setup.key }
    const open = await rk.admin('POST', '/admin/policies', { name: 'open' })
    await rk.admin('POST', '/admin/bindings', { policy: open.body.id, partner: 'acme' })
    other = await newKey(rk, open.body.id, 'other-co')
    const shared = await rk.admin('POST', '/admin/policies', { name: 'shared', customer_max_in_flight: 3 })
    assert.equal(shared.status, 201, JSON.stringify(shared.body))
    assert.equal(shared.body.customer_max_in_flight, 3)
    await rk.admin('POST', '/admin/bindings', { policy: shared.body.id, partner: 'acme' })
    customerKeys = [await newKey(rk, shared.body.id, 'big-co'), await newKey(rk, shared.body.id, 'big-co')]
  })

  after(async () => {
    for (const res of held) res.end()
    await rk?.stop()
    await partner?.close()
  })

  async function holding (n: number): Promise<void> {
    for (let i = 0; i < 100 && held.length < n; i++) await sleep(20)
    assert.equal(held.length, n)
  }

  it('a key at its max_in_flight gets 429 concurrency_limited with Retry-After, spends nothing, and other keys go on', async () => {
    const pending = [call(rk, keyCapped.key, 'hold/1'), call(rk, keyCapped.key, 'hold/2')]
    await holding(2)
    const refused = await call(rk, keyCapped.key, 'hold/3')
    assert.deepEqual(refused, { status: 429, code: 'concurrency_limited', retryAfter: '1' })
    // another key of the same partner is not held back
    assert.equal((await call(rk, other.key, 'fast')).status, 200)
    assert.equal(held.length, 2, 'the refused request never reached the partner')
    for (const res of held.splice(0)) res.end('done')
    for (const answer of await Promise.all(pending)) assert.equal(answer.status, 200)
    // the slots came back
    assert.equal((await call(rk, keyCapped.key, 'fast')).status, 200)
    // the refusal spent nothing: 3 forwarded requests cost 3
    let usage = await rk.admin('GET', `/admin/usage?key_id=${keyCapped.id}`)
    // the audit events reach the store within about a second
    for (let i = 0; i < 50 && usage.body.requests < 4; i++) {
      await sleep(100)
      usage = await rk.admin('GET', `/admin/usage?key_id=${keyCapped.id}`)
    }
    assert.equal(usage.body.budget.used, 3)
    assert.equal(usage.body.blocked.concurrency_limited, 1)
  })

  it('customer_max_in_flight holds across all of the customer\'s keys', async () => {
    const a = customerKeys[0]!
    const b = customerKeys[1]!
    const pending = [call(rk, a.key, 'hold/a1'), call(rk, a.key, 'hold/a2'), call(rk, b.key, 'hold/b1')]
    await holding(3)
    assert.equal((await call(rk, b.key, 'hold/b2')).code, 'concurrency_limited')
    assert.equal((await call(rk, a.key, 'hold/a3')).code, 'concurrency_limited')
    for (const res of held.splice(0)) res.end('done')
    for (const answer of await Promise.all(pending)) assert.equal(answer.status, 200)
    assert.equal((await call(rk, b.key, 'fast')).status, 200)
  })

  it('refuses a max_in_flight that is not a positive whole number, naming the field', async () => {
    for (const [field, value] of [['max_in_flight', 0], ['customer_max_in_flight', 1.5], ['max_in_flight', '3']] as const) {
      const res = await rk.admin('POST', '/admin/policies', { name: `bad-${field}-${String(value)}`, [field]: value })
      assert.equal(res.status, 400)
      assert.match(res.body.error.message, new RegExp(`^${field}: `))
    }
  })
})
