// A request the partner never answered costs nothing: its budget units are reserved before
// forwarding and given back when the connection is refused, dropped or reset, or when the
// partner says nothing within its request_ms. Seen as a client and an operator see it (status,
// error code, GET /admin/usage), through real RelayKey processes in both modes.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { request } from 'undici'
import { distributedEnv, startRelayKey, TEST_REDIS_URL, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { freePort } from '../helpers/ports.js'
import { deleteKeys } from '../helpers/redis-keys.js'

/** every GET costs COST; the budget pays for exactly ALLOWED of them */
const COST = 10
const ALLOWED = 3
const BUDGET = COST * ALLOWED
/** the faulty partner's timeouts.request_ms: one deadline for the one attempt */
const REQUEST_MS = 600

interface Seen {
  status: number
  code: string | undefined
  requestId: string | undefined
  bodyRequestId: string | undefined
  retryAfter: string | undefined
  elapsedMs: number
}

interface BudgetedKey {
  slug: string
  keyId: string
  key: string
}

async function call (rk: RelayKeyProcess, key: string, path: string): Promise<Seen> {
  const started = performance.now()
  const res = await request(`${rk.proxyUrl}/proxy/${path}`, { headers: { 'x-relaykey': key } })
  const text = await res.body.text()
  let body: any
  try { body = JSON.parse(text) } catch { body = undefined }
  const header = (name: string): string | undefined => {
    const value = res.headers[name]
    return Array.isArray(value) ? value[0] : value
  }
  return {
    status: res.statusCode,
    code: body?.error?.code,
    requestId: header('x-relaykey-request-id'),
    bodyRequestId: body?.error?.request_id,
    retryAfter: header('retry-after'),
    elapsedMs: performance.now() - started,
  }
}

async function must (rk: RelayKeyProcess, method: string, path: string, body: unknown): Promise<any> {
  const res = await rk.admin(method, path, body)
  assert.equal(res.status, 201, `${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`)
  return res.body
}

/**
 * A key whose policy has a hard budget of BUDGET units at COST per GET, bound to a faulty
 * partner (`base`, one attempt, a breaker that stays closed) and to the healthy partner `healthy`.
 * Everything exists before the first proxied request, so no worker holds an older copy.
 */
async function budgetedKey (rk: RelayKeyProcess, base: string, healthy: string, options: { budget: boolean } = { budget: true }): Promise<BudgetedKey> {
  const slug = `faulty-${randomBytes(3).toString('hex')}`
  await must(rk, 'POST', '/admin/partners', {
    slug,
    base_urls: { production: base },
    auth: { type: 'header', name: 'X-App-Token', prefix: '' },
    timeouts: { connect_ms: 2000, request_ms: REQUEST_MS },
    retry: { max_attempts: 1 },
    circuit_breaker: { failure_threshold: 100 },
  })
  await must(rk, 'POST', `/admin/partners/${slug}/credentials`, { name: 'main', environment: 'production', secret: { provider: 'inline', value: 'faulty-secret' } })
  const policy = await must(rk, 'POST', '/admin/policies', {
    name: `${slug}-policy`,
    ...(options.budget ? { budget: { monthly: BUDGET } } : {}),
    costs: [{ method: 'GET', path: '/*', cost: COST }],
  })
  await must(rk, 'POST', '/admin/bindings', { policy: policy.id, partner: slug })
  await must(rk, 'POST', '/admin/bindings', { policy: policy.id, partner: healthy })
  const key = await must(rk, 'POST', '/admin/keys', { name: `${slug} key`, policy: policy.id, environment: 'production' })
  return { slug, keyId: key.id, key: key.key }
}

/** a partner that answers 200 to everything, for the requests that spend the budget */
async function healthyPartner (rk: RelayKeyProcess, url: string): Promise<string> {
  const slug = `healthy-${randomBytes(3).toString('hex')}`
  await must(rk, 'POST', '/admin/partners', { slug, base_urls: { production: url }, auth: { type: 'header', name: 'X-App-Token', prefix: '' } })
  await must(rk, 'POST', `/admin/partners/${slug}/credentials`, { name: 'main', environment: 'production', secret: { provider: 'inline', value: 'healthy-secret' } })
  return slug
}

/**
 * GET /admin/usage for the key once its audit events number `requests` (they are written in
 * batches) and the budget shows `used` (a refund lands just after the answer): bounded, and
 * the last answer is returned either way for the caller to assert on.
 */
async function usageOnce (rk: RelayKeyProcess, keyId: string, requests: number, used: number): Promise<any> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const res = await rk.admin('GET', `/admin/usage?key_id=${keyId}`)
    assert.equal(res.status, 200, JSON.stringify(res.body))
    if ((res.body.requests === requests && res.body.budget?.used === used) || Date.now() > deadline) return res.body
    await sleep(100)
  }
}

interface Fault {
  name: string
  status: number
  code: string
  /** the faulty partner's base URL */
  base (partner: MockPartner): Promise<string>
  /** requests the mock partner saw for this fault, or null when none can reach it */
  reached (partner: MockPartner, slug: string): number | null
}

const FAULTS: Fault[] = [
  {
    name: 'the connection is refused (nobody listens)',
    status: 502,
    code: 'upstream_error',
    base: async () => `http://127.0.0.1:${await freePort()}`,
    reached: () => null,
  },
  {
    name: 'the partner closes the connection without answering',
    status: 502,
    code: 'upstream_error',
    base: async (p) => `${p.url}/close`,
    reached: (p, slug) => p.received.filter((r) => r.url.startsWith(`/close/${slug}`)).length,
  },
  {
    name: 'the partner resets the connection (TCP RST) without answering',
    status: 502,
    code: 'upstream_error',
    base: async (p) => `${p.url}/reset`,
    reached: (p, slug) => p.received.filter((r) => r.url.startsWith(`/reset/${slug}`)).length,
  },
  {
    name: 'the partner never answers within its request_ms',
    status: 504,
    code: 'upstream_timeout',
    base: async (p) => `${p.url}/hang`,
    reached: (p, slug) => p.received.filter((r) => r.url.startsWith(`/hang/${slug}`)).length,
  },
]

/** the mock partner's behaviour follows the first path segment: /close, /reset, /hang, else 200 */
function faultyHandler (partner: MockPartner): void {
  partner.handle((req, res) => {
    const url = req.url!
    if (url.startsWith('/close/')) return void req.socket.destroy()
    if (url.startsWith('/reset/')) return void req.socket.resetAndDestroy()
    if (url.startsWith('/hang/')) return // closed by RelayKey at request_ms, or by partner.close()
    const body = JSON.stringify({ ok: true })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
}

/** the same cases against one RelayKey, in whichever mode it runs */
function refundScenarios (rk: () => RelayKeyProcess, partner: () => MockPartner): void {
  let healthy = ''
  before(async () => {
    healthy = await healthyPartner(rk(), partner().url)
  })

  it('without a budget, an unanswered request costs nothing in usage either', async () => {
    // costs count in usage whether or not a budget is there to charge them to
    const setup = await budgetedKey(rk(), `${partner().url}/close`, healthy, { budget: false })
    for (let i = 0; i < 2; i++) assert.equal((await call(rk(), setup.key, `${setup.slug}/closed-${i}`)).status, 502)
    assert.equal((await call(rk(), setup.key, `${healthy}/ok`)).status, 200)
    const deadline = Date.now() + 10_000
    let usage: any
    do {
      if (usage !== undefined) await sleep(100)
      usage = (await rk().admin('GET', `/admin/usage?key_id=${setup.keyId}`)).body
    } while (usage.requests !== 3 && Date.now() < deadline)
    assert.equal(usage.requests, 3)
    assert.equal(usage.upstream_errors, 2)
    assert.equal(usage.cost, COST, 'only the answered request is charged')
    assert.equal(usage.budget, undefined)
  })

  for (const fault of FAULTS) {
    it(`${fault.name}: ${fault.status} ${fault.code}, and the budget is untouched`, async () => {
      const setup = await budgetedKey(rk(), await fault.base(partner()), healthy)
      // one more than the budget would pay for: had any kept its units, the last would be 429
      const failures = ALLOWED + 1
      for (let i = 0; i < failures; i++) {
        const seen = await call(rk(), setup.key, `${setup.slug}/${setup.slug}-${i}`)
        assert.equal(seen.status, fault.status, `attempt ${i}: ${JSON.stringify(seen)}`)
        assert.equal(seen.code, fault.code, `attempt ${i}`)
        assert.equal(typeof seen.requestId, 'string')
        assert.equal(seen.bodyRequestId, seen.requestId, 'the error body names the request')
        if (fault.code === 'upstream_timeout') {
          assert.ok(seen.elapsedMs >= REQUEST_MS - 100 && seen.elapsedMs < REQUEST_MS + 3000, `504 after ${Math.round(seen.elapsedMs)} ms, request_ms ${REQUEST_MS}`)
        }
      }
      // retries are off: each request reached the partner once
      const reached = fault.reached(partner(), setup.slug)
      if (reached !== null) assert.equal(reached, failures, 'one attempt per request')

      const afterFailures = await usageOnce(rk(), setup.keyId, failures, 0)
      assert.deepEqual(afterFailures.budget, { limit: BUDGET, used: 0, remaining: BUDGET }, 'no unit kept by an unanswered request')
      assert.equal(afterFailures.requests, failures)
      assert.equal(afterFailures.forwarded, 0)
      assert.equal(afterFailures.retried, 0, 'a single attempt each')
      assert.equal(afterFailures.cost, 0, 'refunded requests are charged nothing')
      assert.equal(afterFailures.upstream_errors, failures)
      assert.deepEqual(afterFailures.blocked, {})

      // the whole budget is still there: exactly ALLOWED requests go through, the next is refused
      for (let i = 0; i < ALLOWED; i++) {
        const seen = await call(rk(), setup.key, `${healthy}/ok-${i}`)
        assert.equal(seen.status, 200, `paid request ${i} of ${ALLOWED}: ${JSON.stringify(seen)}`)
      }
      const over = await call(rk(), setup.key, `${healthy}/one-too-many`)
      assert.equal(over.status, 429)
      assert.equal(over.code, 'budget_exceeded')
      assert.ok(Number(over.retryAfter) >= 1, `Retry-After ${over.retryAfter}`)

      const spent = await usageOnce(rk(), setup.keyId, failures + ALLOWED + 1, BUDGET)
      assert.deepEqual(spent.budget, { limit: BUDGET, used: BUDGET, remaining: 0 })
      assert.equal(spent.requests, failures + ALLOWED + 1)
      assert.equal(spent.forwarded, ALLOWED)
      assert.equal(spent.cost, BUDGET)
      assert.equal(spent.upstream_errors, failures)
      assert.deepEqual(spent.blocked, { budget_exceeded: 1 })
    })
  }
}

describe('no response, no charge: embedded mode (2 workers)', () => {
  let rk: RelayKeyProcess
  let partner: MockPartner
  const dataDir = mkdtempSync(join(tmpdir(), 'relaykey-refund-'))
  before(async () => {
    partner = await startMockPartner()
    faultyHandler(partner)
    rk = await startRelayKey({ workers: 2, dataDir })
  })
  after(async () => {
    await rk?.stop()
    await partner?.close()
    rmSync(dataDir, { recursive: true, force: true })
  })
  refundScenarios(() => rk, () => partner)
})

describe('no response, no charge: distributed mode (PostgreSQL + Redis, 2 workers)', () => {
  let db: TestDatabase
  let rk: RelayKeyProcess
  let partner: MockPartner
  const dataDir = mkdtempSync(join(tmpdir(), 'relaykey-refund-'))
  // a timed-out limits decision may keep its units (fail closed): give a loaded machine room
  let env: Record<string, string>
  before(async () => {
    db = await createTestDatabase()
    partner = await startMockPartner()
    faultyHandler(partner)
    env = distributedEnv(db.url, { extra: { RELAYKEY_GOVERNANCE_TIMEOUT_MS: '3000' } })
    rk = await startRelayKey({ env, workers: 2, dataDir })
  })
  after(async () => {
    await rk?.stop()
    await partner?.close()
    await db?.drop()
    if (env !== undefined) {
      const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 })
      try {
        await deleteKeys(redis, env.RELAYKEY_REDIS_PREFIX!)
      } finally {
        redis.disconnect()
      }
    }
    rmSync(dataDir, { recursive: true, force: true })
  })
  refundScenarios(() => rk, () => partner)
})
