// /admin/policies: create with defaults, get by id or name, patch, delete (refused while keys
// use the policy), every validation rule (x402 payment settings included), invalidations, and
// on_governance_failure (fail closed unless asked otherwise).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { assertConflict, assertError, assertInvalid, startAdmin, type AdminHarness } from './admin-harness.js'

const USDC = '0x036CbD53842c5426634e7929541eC2318f3dCF7e'
const PAY_TO = '0x' + 'b2'.repeat(20)
const PAYMENT = { amount: '10000', asset: USDC, network: 'eip155:84532', pay_to: PAY_TO, facilitator_url: 'https://f.example' }

describe('policies', () => {
  let admin: AdminHarness
  before(async () => { admin = await startAdmin() })
  after(async () => { await admin.close() })

  it('creates a minimal policy with every optional setting empty, and publishes it', async () => {
    const reply = await admin.call('POST', '/admin/policies', { name: 'basic' })
    assert.equal(reply.status, 201, reply.text)
    const p = reply.json
    assert.equal(p.name, 'basic')
    assert.equal(p.rate_limit, null)
    assert.equal(p.customer_rate_limit, null)
    assert.equal(p.budget, null)
    assert.equal(p.customer_budget, null)
    assert.deepEqual(p.costs, [])
    assert.equal(p.allow, null)
    assert.equal(p.payment, null)
    assert.equal(p.on_governance_failure, 'deny')
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'policy', id: p.id })
  })

  it('creates a full policy, defaulting burst to requests and the optional payment settings', async () => {
    const payment = { amount: '10000', asset: USDC, network: 'eip155:84532', pay_to: PAY_TO, facilitator_url: 'https://f.example' }
    const reply = await admin.call('POST', '/admin/policies', {
      name: 'full',
      rate_limit: { requests: 10, per_seconds: 1 },
      customer_rate_limit: { requests: 100, per_seconds: 60, burst: 20 },
      budget: { monthly: 1000 },
      customer_budget: { monthly: 50000 },
      costs: [{ method: 'POST', path: '/resources/applicants', cost: 150 }, { method: '*', path: '/**', cost: 0 }],
      allow: [{ method: 'GET', path: '/resources/applicants/*' }, { method: '*', path: '/health' }, { method: 'PUT', path: '/a/*/b/**' }],
      payment,
      on_governance_failure: 'allow',
    })
    assert.equal(reply.status, 201, reply.text)
    const p = reply.json
    assert.deepEqual(p.rate_limit, { requests: 10, per_seconds: 1, burst: 10 })
    assert.deepEqual(p.customer_rate_limit, { requests: 100, per_seconds: 60, burst: 20 })
    assert.deepEqual(p.budget, { monthly: 1000 })
    assert.deepEqual(p.customer_budget, { monthly: 50000 })
    assert.equal(p.costs.length, 2)
    assert.deepEqual(p.allow[2], { method: 'PUT', path: '/a/*/b/**' })
    assert.deepEqual(p.payment, { ...payment, scheme: 'exact', max_timeout_seconds: 60, description: null, extra: {}, prices: [] })
    assert.equal(p.on_governance_failure, 'allow')
  })

  it('stores every payment setting and per-endpoint price, and keeps them on read', async () => {
    const payment = {
      amount: '10000',
      asset: USDC,
      network: 'eip155:84532',
      pay_to: PAY_TO,
      facilitator_url: 'https://x402.org/facilitator',
      scheme: 'exact',
      max_timeout_seconds: 120,
      description: 'Applicant checks',
      extra: { name: 'USDC', version: '2' },
      prices: [{ method: 'POST', path: '/resources/applicants', amount: '50000' }, { method: 'GET', path: '/health', amount: '0' }],
    }
    const reply = await admin.call('POST', '/admin/policies', { name: 'paid', payment })
    assert.equal(reply.status, 201, reply.text)
    assert.deepEqual(reply.json.payment, payment)
    assert.deepEqual((await admin.call('GET', `/admin/policies/${reply.json.id}`)).json.payment, payment)
  })

  it('accepts on_governance_failure deny and allow, and keeps it on read', async () => {
    for (const mode of ['deny', 'allow']) {
      const reply = await admin.call('POST', '/admin/policies', { name: `governance-${mode}`, on_governance_failure: mode })
      assert.equal(reply.status, 201, reply.text)
      assert.equal(reply.json.on_governance_failure, mode)
      assert.equal((await admin.call('GET', `/admin/policies/${reply.json.id}`)).json.on_governance_failure, mode)
    }
  })

  it('accepts an empty allow list (nothing allowed)', async () => {
    const reply = await admin.call('POST', '/admin/policies', { name: 'deny-all', allow: [] })
    assert.equal(reply.status, 201, reply.text)
    assert.deepEqual(reply.json.allow, [])
  })

  it('lists policies and gets one by id or by name', async () => {
    const list = await admin.call('GET', '/admin/policies')
    assert.equal(list.status, 200)
    const full = list.json.find((p: { name: string }) => p.name === 'full')
    assert.ok(full !== undefined)
    assert.equal((await admin.call('GET', `/admin/policies/${full.id}`)).json.name, 'full')
    assert.equal((await admin.call('GET', '/admin/policies/full')).json.id, full.id)
    assertError(await admin.call('GET', '/admin/policies/pol_nope'), 404, 'not_found')
  })

  it('refuses a duplicate name with 409 naming name', async () => {
    assertConflict(await admin.call('POST', '/admin/policies', { name: 'basic' }), 'name')
  })

  const invalid: Array<[string, Record<string, unknown>, string]> = [
    ['missing name', { name: undefined }, 'name'],
    ['name not a string', { name: 3 }, 'name'],
    ['name shaped like an id', { name: 'pol_123' }, 'name'],
    ['name with edge whitespace', { name: ' padded ' }, 'name'],
    ['rate limit without requests', { rate_limit: { per_seconds: 1 } }, 'rate_limit.requests'],
    ['rate limit with fractional per_seconds', { rate_limit: { requests: 1, per_seconds: 0.5 } }, 'rate_limit.per_seconds'],
    ['customer rate limit with zero per_seconds', { customer_rate_limit: { requests: 1, per_seconds: 0 } }, 'customer_rate_limit.per_seconds'],
    ['customer rate limit with an unknown member', { customer_rate_limit: { requests: 1, per_seconds: 1, x: 1 } }, 'customer_rate_limit.x'],
    ['budget not an object', { budget: 100 }, 'budget'],
    ['zero monthly budget', { budget: { monthly: 0 } }, 'budget.monthly'],
    ['fractional monthly budget', { budget: { monthly: 1.5 } }, 'budget.monthly'],
    ['customer budget without monthly', { customer_budget: {} }, 'customer_budget.monthly'],
    ['customer budget with a daily member', { customer_budget: { monthly: 5, daily: 1 } }, 'customer_budget.daily'],
    ['costs not an array', { costs: {} }, 'costs'],
    ['cost rule not an object', { costs: ['POST /x'] }, 'costs[0]'],
    ['lowercase cost method', { costs: [{ method: 'post', path: '/x', cost: 1 }] }, 'costs[0].method'],
    ['cost path without slash', { costs: [{ method: 'POST', path: 'x', cost: 1 }] }, 'costs[0].path'],
    ['negative cost', { costs: [{ method: 'GET', path: '/x', cost: 1 }, { method: 'GET', path: '/y', cost: -1 }] }, 'costs[1].cost'],
    ['fractional cost', { costs: [{ method: 'GET', path: '/x', cost: 0.5 }] }, 'costs[0].cost'],
    ['missing cost', { costs: [{ method: 'GET', path: '/x' }] }, 'costs[0].cost'],
    ['unknown cost member', { costs: [{ method: 'GET', path: '/x', cost: 1, weight: 2 }] }, 'costs[0].weight'],
    ['allow not an array', { allow: 'GET /x' }, 'allow'],
    ['allow method with spaces', { allow: [{ method: 'GET POST', path: '/x' }] }, 'allow[0].method'],
    ['allow without method', { allow: [{ path: '/x' }] }, 'allow[0].method'],
    ['partial-segment wildcard', { allow: [{ method: 'GET', path: '/ok' }, { method: 'GET', path: '/a/b*' }] }, 'allow[1].path'],
    ['** in the middle', { allow: [{ method: 'GET', path: '/**/a' }] }, 'allow[0].path'],
    ['** not as /**', { allow: [{ method: 'GET', path: '/a**' }] }, 'allow[0].path'],
    ['query in a path', { allow: [{ method: 'GET', path: '/a?b=1' }] }, 'allow[0].path'],
    ['empty segment in a path', { allow: [{ method: 'GET', path: '/a//b' }] }, 'allow[0].path'],
    ['unknown allow member', { allow: [{ method: 'GET', path: '/a', cost: 1 }] }, 'allow[0].cost'],
    ['payment not an object', { payment: 'x402' }, 'payment'],
    ['payment without amount', { payment: { ...PAYMENT, amount: undefined } }, 'payment.amount'],
    ['payment amount as a number', { payment: { ...PAYMENT, amount: 10000 } }, 'payment.amount'],
    ['payment on a v1 network name', { payment: { ...PAYMENT, network: 'base-sepolia' } }, 'payment.network'],
    ['payment to no EVM address', { payment: { ...PAYMENT, pay_to: '0xdef' } }, 'payment.pay_to'],
    ['payment without facilitator', { payment: { ...PAYMENT, facilitator_url: undefined } }, 'payment.facilitator_url'],
    ['payment facilitator not http', { payment: { ...PAYMENT, facilitator_url: 'file:///etc/passwd' } }, 'payment.facilitator_url'],
    ['payment timeout of zero', { payment: { ...PAYMENT, max_timeout_seconds: 0 } }, 'payment.max_timeout_seconds'],
    ['payment with an unknown member', { payment: { ...PAYMENT, price: '1' } }, 'payment.price'],
    ['payment price with a decimal amount', { payment: { ...PAYMENT, prices: [{ method: 'GET', path: '/x', amount: '0.5' }] } }, 'payment.prices[0].amount'],
    ['payment price with a bad path', { payment: { ...PAYMENT, prices: [{ method: 'GET', path: '/x', amount: '1' }, { method: 'GET', path: 'y', amount: '1' }] } }, 'payment.prices[1].path'],
    ['on_governance_failure outside deny/allow', { on_governance_failure: 'open' }, 'on_governance_failure'],
    ['on_governance_failure in capitals', { on_governance_failure: 'DENY' }, 'on_governance_failure'],
    ['on_governance_failure as a boolean', { on_governance_failure: true }, 'on_governance_failure'],
    ['on_governance_failure null', { on_governance_failure: null }, 'on_governance_failure'],
  ]
  for (const [what, fields, field] of invalid) {
    it(`refuses ${what} naming ${field}`, async () => {
      assertInvalid(await admin.call('POST', '/admin/policies', { name: 'valid', ...fields }), field)
    })
  }

  it('patches settings, clears them with null, and publishes the policy', async () => {
    const id = (await admin.call('GET', '/admin/policies/full')).json.id
    const reply = await admin.call('PATCH', `/admin/policies/${id}`, {
      rate_limit: { requests: 5, per_seconds: 2, burst: 1 }, budget: null, costs: null, allow: null, payment: null,
    })
    assert.equal(reply.status, 200, reply.text)
    assert.deepEqual(reply.json.rate_limit, { requests: 5, per_seconds: 2, burst: 1 })
    assert.equal(reply.json.budget, null)
    assert.deepEqual(reply.json.costs, [])
    assert.equal(reply.json.allow, null)
    assert.equal(reply.json.payment, null)
    assert.deepEqual(reply.json.customer_budget, { monthly: 50000 })
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'policy', id })
  })

  it('patches on_governance_failure both ways, publishing each change, and keeps it through other patches', async () => {
    const id = (await admin.call('POST', '/admin/policies', { name: 'outage-mode' })).json.id
    const open = await admin.call('PATCH', `/admin/policies/${id}`, { on_governance_failure: 'allow' })
    assert.equal(open.status, 200, open.text)
    assert.equal(open.json.on_governance_failure, 'allow')
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'policy', id })
    const other = await admin.call('PATCH', `/admin/policies/${id}`, { budget: { monthly: 10 } })
    assert.equal(other.json.on_governance_failure, 'allow')
    const closed = await admin.call('PATCH', `/admin/policies/${id}`, { on_governance_failure: 'deny' })
    assert.equal(closed.status, 200, closed.text)
    assert.equal(closed.json.on_governance_failure, 'deny')
    for (const bad of ['open', null, 0]) {
      assertInvalid(await admin.call('PATCH', `/admin/policies/${id}`, { on_governance_failure: bad }), 'on_governance_failure')
    }
    assert.equal((await admin.call('GET', `/admin/policies/${id}`)).json.on_governance_failure, 'deny')
  })

  it('patches by name and renames', async () => {
    const reply = await admin.call('PATCH', '/admin/policies/deny-all', { name: 'locked', allow: [{ method: 'GET', path: '/status' }] })
    assert.equal(reply.status, 200, reply.text)
    assert.equal(reply.json.name, 'locked')
    assert.equal((await admin.call('GET', '/admin/policies/locked')).status, 200)
  })

  it('validates patches, refuses taken names, and answers 404 for unknown policies', async () => {
    assertInvalid(await admin.call('PATCH', '/admin/policies/basic', { allow: [{ method: 'GET', path: 'x' }] }), 'allow[0].path')
    assertInvalid(await admin.call('PATCH', '/admin/policies/basic', { budget: { monthly: -1 } }), 'budget.monthly')
    assertInvalid(await admin.call('PATCH', '/admin/policies/basic', { payment: { ...PAYMENT, amount: '-1' } }), 'payment.amount')
    assertInvalid(await admin.call('PATCH', '/admin/policies/basic', { id: 'pol_x' }), 'id')
    assertInvalid(await admin.call('PATCH', '/admin/policies/basic', { name: null }), 'name')
    assertConflict(await admin.call('PATCH', '/admin/policies/basic', { name: 'full' }), 'name')
    assertError(await admin.call('PATCH', '/admin/policies/pol_nope', { name: 'x' }), 404, 'not_found')
  })

  it('refuses to delete a policy keys still use with 409, deletes it afterwards with 204', async () => {
    const policy = (await admin.call('POST', '/admin/policies', { name: 'in-use' })).json
    const key = await admin.call('POST', '/admin/keys', { name: 'k', policy: policy.id, environment: 'production' })
    assert.equal(key.status, 201, key.text)
    assertConflict(await admin.call('DELETE', `/admin/policies/${policy.id}`), 'policy')
    await admin.call('PATCH', `/admin/keys/${key.json.id}`, { policy: 'basic' })
    const reply = await admin.call('DELETE', `/admin/policies/${policy.id}`)
    assert.equal(reply.status, 204, reply.text)
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'policy', id: policy.id })
    assertError(await admin.call('GET', `/admin/policies/${policy.id}`), 404, 'not_found')
    assertError(await admin.call('DELETE', `/admin/policies/${policy.id}`), 404, 'not_found')
  })
})
