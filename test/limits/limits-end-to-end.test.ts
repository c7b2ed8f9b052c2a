// Limits and budgets as clients see them, through real RelayKey processes: 2 workers in
// embedded mode (SQLite), and 2 nodes sharing PostgreSQL + Redis in distributed mode.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { distributedEnv, startRelayKey, setUpGovernedPartner, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { callProxy, count, tally, type Outcome } from '../helpers/proxy-outcomes.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'

/** the same scenarios, against one or two RelayKey nodes */
function limitScenarios (nodes: () => RelayKeyProcess[], partner: () => MockPartner): void {
  let n = 0
  const slug = (): string => `p${++n}-${randomBytes(3).toString('hex')}`
  const node = (i: number): RelayKeyProcess => nodes()[i % nodes().length]!

  it('a budget of 100 forwards exactly 100 of 400 concurrent requests', async () => {
    const s = slug()
    const setup = await setUpGovernedPartner(node(0), { slug: s, baseUrl: partner().url })
    assert.equal((await node(0).admin('PATCH', `/admin/policies/${setup.policyId}`, { budget: { monthly: 100 } })).status, 200)
    await sleep(300)
    const before = partner().received.length
    const outcomes = await Promise.all(Array.from({ length: 400 }, (_, i) => callProxy(node(i), setup.key, `${s}/x`)))
    const summary = tally(outcomes)
    assert.equal(count(outcomes, 200), 100, summary)
    assert.equal(count(outcomes, 429, 'budget_exceeded'), 300, summary)
    assert.equal(partner().received.length - before, 100)
    const refused = outcomes.find((o) => o.status === 429)!
    const secondsToMonth = Math.ceil((Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + 1, 1) - Date.now()) / 1000)
    assert.ok(Math.abs(Number(refused.headers['retry-after']) - secondsToMonth) <= 5)
  })

  it('a key rate limit admits its burst, answers 429 with Retry-After and RateLimit headers', async () => {
    const s = slug()
    const setup = await setUpGovernedPartner(node(0), { slug: s, baseUrl: partner().url })
    assert.equal((await node(0).admin('PATCH', `/admin/policies/${setup.policyId}`, { rate_limit: { requests: 10, per_seconds: 60 } })).status, 200)
    await sleep(300)
    const outcomes = await Promise.all(Array.from({ length: 30 }, (_, i) => callProxy(node(i), setup.key, `${s}/x`)))
    assert.equal(count(outcomes, 200), 10)
    assert.equal(count(outcomes, 429, 'rate_limited'), 20)
    const ok = outcomes.find((o) => o.status === 200)!
    assert.equal(ok.headers['ratelimit-policy'], '"key";q=10;w=60')
    assert.match(String(ok.headers.ratelimit), /^"key";r=\d+;t=\d+$/)
    const limited = outcomes.find((o) => o.status === 429)!
    assert.equal(limited.headers['ratelimit-policy'], '"key";q=10;w=60')
    assert.match(String(limited.headers.ratelimit), /^"key";r=0;t=\d+$/)
    assert.ok(Number(limited.headers['retry-after']) >= 1 && Number(limited.headers['retry-after']) <= 6)
  })

  it('a budget refusal still carries the rate limit\'s RateLimit headers', async () => {
    const s = slug()
    const setup = await setUpGovernedPartner(node(0), { slug: s, baseUrl: partner().url })
    assert.equal((await node(0).admin('PATCH', `/admin/policies/${setup.policyId}`, { rate_limit: { requests: 100, per_seconds: 60 }, budget: { monthly: 1 } })).status, 200)
    await sleep(300)
    assert.equal((await callProxy(node(0), setup.key, `${s}/x`)).status, 200)
    const over = await callProxy(node(1), setup.key, `${s}/x`)
    assert.equal(over.code, 'budget_exceeded')
    assert.equal(over.headers['ratelimit-policy'], '"key";q=100;w=60')
    // the refused request took no room: 99 of the 100 are left
    assert.match(String(over.headers.ratelimit), /^"key";r=99;t=\d+$/)
  })

  it('a customer limit holds across all of the customer\'s keys', async () => {
    const s = slug()
    const customer = `cust-${randomBytes(3).toString('hex')}`
    const setup = await setUpGovernedPartner(node(0), { slug: s, baseUrl: partner().url, customer })
    assert.equal((await node(0).admin('PATCH', `/admin/policies/${setup.policyId}`, { customer_rate_limit: { requests: 6, per_seconds: 60 } })).status, 200)
    const second = await node(0).admin('POST', '/admin/keys', { name: 'second', policy: setup.policyId, environment: 'production', customer })
    await sleep(300)
    const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => callProxy(node(i), i % 2 === 0 ? setup.key : second.body.key, `${s}/x`)))
    assert.equal(count(outcomes, 200), 6)
    assert.equal(count(outcomes, 429, 'rate_limited'), 14)
  })

  it('a customer budget holds exactly across the customer\'s keys under concurrency', async () => {
    const s = slug()
    const customer = `cust-${randomBytes(3).toString('hex')}`
    const setup = await setUpGovernedPartner(node(0), { slug: s, baseUrl: partner().url, customer })
    assert.equal((await node(0).admin('PATCH', `/admin/policies/${setup.policyId}`, { customer_budget: { monthly: 60 } })).status, 200)
    const second = await node(0).admin('POST', '/admin/keys', { name: 'second', policy: setup.policyId, environment: 'production', customer })
    await sleep(300)
    const before = partner().received.length
    const keys = [setup.key, second.body.key as string]
    const outcomes = await Promise.all(Array.from({ length: 240 }, (_, i) => callProxy(node(i), keys[(i >> 1) % 2]!, `${s}/x`)))
    const summary = tally(outcomes)
    assert.equal(count(outcomes, 200), 60, summary)
    assert.equal(count(outcomes, 429, 'budget_exceeded'), 180, summary)
    assert.equal(partner().received.length - before, 60)
    const usage = await node(1).admin('GET', `/admin/usage?customer=${customer}`)
    assert.equal(usage.status, 200)
    assert.deepEqual(usage.body.budget, { limit: 60, used: 60, remaining: 0 })
  })

  it('endpoint costs come out of the budget; 5xx and no response refund, 4xx does not', async () => {
    const s = slug()
    const setup = await setUpGovernedPartner(node(0), { slug: s, baseUrl: partner().url })
    assert.equal((await node(0).admin('PATCH', `/admin/policies/${setup.policyId}`, {
      budget: { monthly: 300 }, costs: [{ method: 'POST', path: '/applicants', cost: 150 }, { method: 'GET', path: '/fail/*', cost: 100 }],
    })).status, 200)
    // budgets alone: no retries, and a breaker that stays closed through the five 503s
    assert.equal((await node(0).admin('PATCH', `/admin/partners/${s}`, { retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 100 } })).status, 200)
    await sleep(300)
    partner().handle((req, res) => {
      res.writeHead(req.url!.includes('/fail/5') ? 503 : req.url!.includes('/fail/4') ? 404 : 200)
      res.end()
    })
    // 503s give their 100 back, again and again
    for (let i = 0; i < 5; i++) assert.equal((await callProxy(node(i), setup.key, `${s}/fail/5`)).status, 503)
    assert.equal((await callProxy(node(0), setup.key, `${s}/applicants`, 'POST')).status, 200) // 150 used
    assert.equal((await callProxy(node(1), setup.key, `${s}/fail/4`)).status, 404) // 250 used: 4xx is a response
    const over = await callProxy(node(0), setup.key, `${s}/applicants`, 'POST')
    assert.equal(over.code, 'budget_exceeded') // 250 + 150 > 300
    assert.equal((await callProxy(node(1), setup.key, `${s}/x`)).status, 200) // default cost 1: 251
  })

  it('credential quotas: selection skips spent credentials, then 429 upstream_quota_exceeded', async () => {
    const s = slug()
    const setup = await setUpGovernedPartner(node(0), { slug: s, baseUrl: partner().url })
    const creds = await node(0).admin('GET', `/admin/partners/${s}/credentials`)
    assert.equal((await node(0).admin('PATCH', `/admin/credentials/${creds.body[0].id}`, { rate_limit: { requests: 2, per_seconds: 600 } })).status, 200)
    const second = await node(0).admin('POST', `/admin/partners/${s}/credentials`, {
      name: 'second', environment: 'production', secret: { provider: 'inline', value: 'second-secret' }, rate_limit: { requests: 3, per_seconds: 600 },
    })
    assert.equal(second.status, 201)
    await sleep(300)
    const before = partner().received.length
    const outcomes: Outcome[] = []
    for (let i = 0; i < 7; i++) outcomes.push(await callProxy(node(i), setup.key, `${s}/x`))
    assert.equal(count(outcomes, 200), 5)
    assert.equal(count(outcomes, 429, 'upstream_quota_exceeded'), 2)
    const tokens = partner().received.slice(before).map((r) => r.headers['x-app-token'])
    assert.equal(tokens.filter((t) => t === 'upstream-secret-value').length, 2)
    assert.equal(tokens.filter((t) => t === 'second-secret').length, 3)
  })

  it('a failover to another credential spends that credential\'s vendor quota too', async () => {
    const s = slug()
    const setup = await setUpGovernedPartner(node(0), { slug: s, baseUrl: partner().url })
    assert.equal((await node(0).admin('PATCH', `/admin/partners/${s}`, { retry: { max_attempts: 2, base_delay_ms: 1, max_delay_ms: 2 } })).status, 200)
    const second = await node(0).admin('POST', `/admin/partners/${s}/credentials`, {
      name: 'second', environment: 'production', secret: { provider: 'inline', value: 'quota-secret' }, rate_limit: { requests: 3, per_seconds: 600 },
    })
    assert.equal(second.status, 201)
    await sleep(300)
    // the first credential was revoked at the vendor: a request meeting its 401 fails over to
    // the second, whose quota of 3 covers every request the vendor sees with it (one key's 401s
    // leave the first in rotation: docs/reliability.md)
    partner().handle((req, res) => { res.writeHead(req.headers['x-app-token'] === 'upstream-secret-value' ? 401 : 200); res.end() })
    const before = partner().received.length
    const outcomes: Outcome[] = []
    for (let i = 0; i < 8; i++) outcomes.push(await callProxy(node(i), setup.key, `${s}/x`))
    const tokens = partner().received.slice(before).map((r) => r.headers['x-app-token'])
    assert.equal(tokens.filter((t) => t === 'quota-secret').length, 3, tally(outcomes))
    assert.equal(count(outcomes, 200), 3, tally(outcomes))
    assert.equal(count(outcomes, 429, 'upstream_quota_exceeded'), 5, tally(outcomes))
  })
}

describe('limits and budgets, embedded mode (2 workers)', () => {
  let rk: RelayKeyProcess
  let partner: MockPartner
  before(async () => {
    partner = await startMockPartner()
    rk = await startRelayKey({ workers: 2 })
  })
  after(async () => {
    await rk.stop()
    await partner.close()
  })
  limitScenarios(() => [rk], () => partner)
})

describe('limits and budgets, distributed mode (2 nodes, PostgreSQL + Redis)', () => {
  let db: TestDatabase
  let nodes: RelayKeyProcess[]
  let partner: MockPartner
  before(async () => {
    db = await createTestDatabase()
    partner = await startMockPartner()
    // a timed-out decision may still have taken its units (fail closed, never refunded on
    // doubt); this file tests exactness, not timeouts, so give a loaded CI machine room
    const env = distributedEnv(db.url, { extra: { RELAYKEY_GOVERNANCE_TIMEOUT_MS: '3000' } })
    nodes = [await startRelayKey({ env, workers: 1 }), await startRelayKey({ env, workers: 1 })]
  })
  after(async () => {
    for (const node of nodes) await node.stop()
    await partner.close()
    await db.drop()
  })
  limitScenarios(() => nodes, () => partner)
})
