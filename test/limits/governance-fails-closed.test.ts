// Redis down, paused or back: limits fail closed quickly (503 governance_unavailable), a policy
// that opted into fail-open forwards unmetered, and RelayKey recovers by itself.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { distributedEnv, startRelayKey, setUpGovernedPartner, type RelayKeyProcess, type GovernedSetup } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

async function call (rk: RelayKeyProcess, key: string): Promise<{ status: number; code?: string; retryAfter?: string; ms: number }> {
  const started = Date.now()
  const res = await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': key } })
  const text = await res.body.text()
  let code: string | undefined
  try { code = JSON.parse(text).error?.code } catch {}
  const retryAfter = res.headers['retry-after'] as string | undefined
  return { status: res.statusCode, code, retryAfter, ms: Date.now() - started }
}

describe('governance store failures', () => {
  let redis: RedisServer
  let db: TestDatabase
  let partner: MockPartner
  let rk: RelayKeyProcess
  let closed: GovernedSetup
  let openKey: string

  before(async () => {
    redis = await startRedisServer()
    db = await createTestDatabase()
    partner = await startMockPartner()
    rk = await startRelayKey({
      workers: 1,
      env: distributedEnv(db.url, { redisUrl: redis.url, extra: { RELAYKEY_GOVERNANCE_TIMEOUT_MS: '250' } }),
    })
    closed = await setUpGovernedPartner(rk, { baseUrl: partner.url })
    assert.equal((await rk.admin('PATCH', `/admin/policies/${closed.policyId}`, { rate_limit: { requests: 1000, per_seconds: 1 } })).status, 200)
    const open = await rk.admin('POST', '/admin/policies', { name: 'fail-open', rate_limit: { requests: 1000, per_seconds: 1 }, on_governance_failure: 'allow' })
    assert.equal(open.status, 201)
    assert.equal((await rk.admin('POST', '/admin/bindings', { policy: open.body.id, partner: 'acme' })).status, 201)
    openKey = (await rk.admin('POST', '/admin/keys', { name: 'open', policy: open.body.id, environment: 'production' })).body.key
  })
  after(async () => {
    await rk.stop()
    await partner.close()
    await redis.stop()
    await db.drop()
  })

  it('serves normally while Redis answers', async () => {
    assert.equal((await call(rk, closed.key)).status, 200)
    assert.equal((await call(rk, openKey)).status, 200)
  })

  it('Redis paused: 503 governance_unavailable within the decision timeout, not a hang', async () => {
    await redis.pause(3000)
    const r = await call(rk, closed.key)
    assert.equal(r.code, 'governance_unavailable')
    assert.equal(r.status, 503)
    assert.equal(r.retryAfter, '1')
    assert.ok(r.ms < 1500, `took ${r.ms} ms`)
    const open = await call(rk, openKey)
    assert.equal(open.status, 200, 'a fail-open policy forwards unmetered')
    await sleep(3000)
  })

  it('Redis down: 503 at once, /ready says 503, and fail-open still forwards', async () => {
    await redis.stop()
    await sleep(200)
    const r = await call(rk, closed.key)
    assert.equal(r.code, 'governance_unavailable')
    assert.ok(r.ms < 1000, `took ${r.ms} ms`)
    assert.equal((await call(rk, openKey)).status, 200)
    const ready = await request(`${rk.proxyUrl}/ready`)
    assert.equal(ready.statusCode, 503)
    await ready.body.dump()
  })

  it('recovers by itself when Redis returns', async () => {
    await redis.start()
    let last = { status: 0, ms: 0 } as { status: number; code?: string; ms: number }
    for (let i = 0; i < 50; i++) {
      last = await call(rk, closed.key)
      if (last.status === 200) break
      await sleep(200)
    }
    assert.equal(last.status, 200)
    const ready = await request(`${rk.proxyUrl}/ready`)
    assert.equal(ready.statusCode, 200)
    await ready.body.dump()
  })

  it('charges nothing for the requests it refused: usage cost is the forwarded requests only', async () => {
    let usage: { forwarded: number; cost: number; blocked: Record<string, number> } | undefined
    for (let i = 0; i < 50; i++) {
      usage = (await rk.admin('GET', `/admin/usage?key_id=${closed.keyId}`)).body
      if (usage!.forwarded >= 2 && (usage!.blocked.governance_unavailable ?? 0) >= 2) break
      await sleep(200)
    }
    assert.ok((usage!.blocked.governance_unavailable ?? 0) >= 2, JSON.stringify(usage))
    assert.equal(usage!.cost, usage!.forwarded, JSON.stringify(usage))
  })
})
