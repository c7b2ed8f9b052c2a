// Limits and budgets through real RelayKey nodes on a real three-master Redis Cluster: two nodes
// in distributed mode with REDIS_URL=redis+cluster://…, where every decision is its own script
// call and the owner's and the partner's parts may land on different masters. Budgets and rate
// limits must still be exact, and a revocation must reach the other node over cluster pub/sub.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { distributedEnv, setUpGovernedPartner, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { callProxy, count, tally } from '../helpers/proxy-outcomes.js'
import { redisCommand } from '../helpers/redis-command.js'

function secondsToNextMonth (): number {
  const now = new Date()
  return Math.ceil((Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - now.getTime()) / 1000)
}

describe('limits and budgets, 2 nodes on a 3-master Redis Cluster (redis+cluster://)', () => {
  let cluster: RedisCluster | undefined
  let db: TestDatabase | undefined
  let partner: MockPartner | undefined
  let env: Record<string, string>
  const nodes: RelayKeyProcess[] = []
  /** every data dir this file made, removed in after() even when a start failed */
  const dataDirs: string[] = []
  const dataDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'relaykey-data-'))
    dataDirs.push(dir)
    return dir
  }
  let slugs = 0
  const slug = (): string => `c${++slugs}-${Math.random().toString(36).slice(2, 8)}`
  const node = (i: number): RelayKeyProcess => nodes[i % nodes.length]!

  before(async () => {
    cluster = await startRedisCluster()
    db = await createTestDatabase()
    partner = await startMockPartner()
    // the contract's form, every master as a seed: redis+cluster://host1:port,host2:port,…
    const seed = cluster.url
    // a timed-out decision may still have taken its units (fail closed, never refunded on
    // doubt); this file tests exactness, not timeouts, so give a loaded machine room
    env = distributedEnv(db.url, { redisUrl: seed, extra: { RELAYKEY_GOVERNANCE_TIMEOUT_MS: '3000' } })
    // one after the other: the first applies the migrations
    nodes.push(await startRelayKey({ env, workers: 1, dataDir: dataDir() }))
    nodes.push(await startRelayKey({ env, workers: 1, dataDir: dataDir() }))
  }, { timeout: 60_000 })

  after(async () => {
    try {
      for (const rk of nodes) await rk.stop()
      await partner?.close()
      await db?.drop()
    } finally {
      await cluster?.stop()
      for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true })
    }
  })

  it('both nodes run on the cluster and are ready', async () => {
    for (const rk of nodes) {
      const res = await request(`${rk.proxyUrl}/ready`)
      assert.equal(res.statusCode, 200, rk.output())
      await res.body.dump()
    }
  })

  it('a budget of 100 forwards exactly 100 of 400 concurrent requests split across both nodes', async () => {
    const s = slug()
    const setup = await setUpGovernedPartner(node(0), { slug: s, baseUrl: partner!.url })
    assert.equal((await node(0).admin('PATCH', `/admin/policies/${setup.policyId}`, { budget: { monthly: 100 } })).status, 200)
    await sleep(300)
    const before = partner!.received.length
    const outcomes = await Promise.all(Array.from({ length: 400 }, (_, i) => callProxy(node(i), setup.key, `${s}/x`)))
    const summary = tally(outcomes)
    assert.equal(count(outcomes, 200), 100, summary)
    assert.equal(count(outcomes, 429, 'budget_exceeded'), 300, summary)
    assert.equal(partner!.received.length - before, 100, 'the partner itself saw exactly the budget')

    const secondsToMonth = secondsToNextMonth()
    for (const refused of outcomes.filter((o) => o.status === 429)) {
      assert.ok(Math.abs(Number(refused.headers['retry-after']) - secondsToMonth) <= 5,
        `Retry-After ${String(refused.headers['retry-after'])}, expected about ${secondsToMonth}`)
    }

    // the counter lives on the cluster, on one master: SCAN is per node in a cluster
    const counters: string[] = []
    for (const { port } of cluster!.nodes) {
      let cursor = '0'
      do {
        const [next, keys] = await redisCommand(port, ['SCAN', cursor, 'MATCH', `${env.RELAYKEY_REDIS_PREFIX}:*budget*${setup.keyId}*`, 'COUNT', '1000']) as [string, string[]]
        for (const key of keys) counters.push(`${port}=${String(await redisCommand(port, ['GET', key]))}`)
        cursor = next
      } while (cursor !== '0')
    }
    assert.equal(counters.length, 1, counters.join(' '))
    assert.match(counters[0]!, /=100$/)

    // and the other node's control plane reads the same number from the cluster
    const usage = await node(1).admin('GET', `/admin/usage?key_id=${setup.keyId}`)
    assert.equal(usage.status, 200, JSON.stringify(usage.body))
    assert.deepEqual(usage.body.budget, { limit: 100, used: 100, remaining: 0 })
  })

  it('a key rate limit admits exactly its burst across both nodes, answers 429 with Retry-After and RateLimit headers', async () => {
    const s = slug()
    const setup = await setUpGovernedPartner(node(0), { slug: s, baseUrl: partner!.url })
    assert.equal((await node(0).admin('PATCH', `/admin/policies/${setup.policyId}`, { rate_limit: { requests: 10, per_seconds: 60 } })).status, 200)
    await sleep(300)
    const before = partner!.received.length
    const outcomes = await Promise.all(Array.from({ length: 30 }, (_, i) => callProxy(node(i), setup.key, `${s}/x`)))
    const summary = tally(outcomes)
    assert.equal(count(outcomes, 200), 10, summary)
    assert.equal(count(outcomes, 429, 'rate_limited'), 20, summary)
    assert.equal(partner!.received.length - before, 10)
    for (const ok of outcomes.filter((o) => o.status === 200)) {
      assert.equal(ok.headers['ratelimit-policy'], '"key";q=10;w=60')
      assert.match(String(ok.headers.ratelimit), /^"key";r=\d+;t=\d+$/)
    }
    for (const limited of outcomes.filter((o) => o.status === 429)) {
      assert.equal(limited.headers['ratelimit-policy'], '"key";q=10;w=60')
      assert.match(String(limited.headers.ratelimit), /^"key";r=0;t=\d+$/)
      const retryAfter = Number(limited.headers['retry-after'])
      assert.ok(retryAfter >= 1 && retryAfter <= 6, `Retry-After ${String(limited.headers['retry-after'])}`)
    }
  })

  it('a revocation on node A is refused on node B within 1 s (cluster pub/sub)', async () => {
    const s = slug()
    const setup = await setUpGovernedPartner(node(0), { slug: s, baseUrl: partner!.url })
    // node B caches the key's context first (30 s TTL), so only the invalidation can make it refuse
    assert.equal((await callProxy(node(1), setup.key, `${s}/x`)).status, 200)
    assert.equal((await node(0).admin('POST', `/admin/keys/${setup.keyId}/revoke`)).status, 200)
    await sleep(1000)
    const onB = await callProxy(node(1), setup.key, `${s}/x`)
    assert.deepEqual([onB.status, onB.code], [401, 'key_revoked'])
    const onA = await callProxy(node(0), setup.key, `${s}/x`)
    assert.deepEqual([onA.status, onA.code], [401, 'key_revoked'])
  })
})
