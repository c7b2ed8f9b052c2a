// A deleted partner leaves nothing behind in the workers: its breakers, retry budget and
// concurrency gate go, and with them its series of the reliability metrics, while another
// partner's stay. A node that missed the deletion's message (its Redis connection was down)
// catches up when its subscriber reconnects.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { distributedEnv, startRelayKey, TEST_REDIS_URL, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { TcpFaultProxy } from '../helpers/tcp-fault-proxy.js'
import { ReliabilityBench, call, metricsText, partnerWith, uniqueSlug } from './reliability-harness.js'

const RELIABILITY_SERIES = /^relaykey_(circuit_open|circuit_openings_total|upstream_in_flight|concurrency_refusals_total|retry_budget_exhausted_total)\{/

function inFlight (slug: string): RegExp {
  return new RegExp(`^relaykey_upstream_in_flight\\{partner="${slug}"\\} 0$`, 'm')
}

/** the reliability series that still name `slug` */
function seriesOf (metrics: string, slug: string): string[] {
  return metrics.split('\n').filter((l) => RELIABILITY_SERIES.test(l) && l.includes(`partner="${slug}"`))
}

/** scrapes until `slug` has no reliability series left (bounded), and returns the last scrape */
async function scrapeUntilGone (rk: RelayKeyProcess, slug: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs
  let metrics = await metricsText(rk)
  while (seriesOf(metrics, slug).length > 0 && Date.now() < deadline) {
    await sleep(100)
    metrics = await metricsText(rk)
  }
  return metrics
}

describe('a deleted partner\'s reliability state', () => {
  const bench = new ReliabilityBench({ workers: 2 })
  before(async () => { await bench.start() })
  after(async () => { await bench.stop() })

  it('is dropped from every worker, and its metric series with it', async () => {
    const rk = bench.rk
    const p = await bench.partner()
    const gone = uniqueSlug('gone')
    const kept = uniqueSlug('kept')
    const setups = [await partnerWith(rk, p.url, gone, {}), await partnerWith(rk, p.url, kept, {})]
    for (const [i, slug] of [gone, kept].entries()) {
      for (let n = 0; n < 4; n++) assert.equal((await call(rk, setups[i]!.key, `${slug}/x`)).status, 200)
    }
    const before = await metricsText(rk)
    assert.ok(inFlight(gone).test(before) && inFlight(kept).test(before), 'both partners reported before the deletion')

    assert.equal((await rk.admin('DELETE', `/admin/partners/${gone}`)).status, 204)
    const after = await scrapeUntilGone(rk, gone, 4_000)
    assert.deepEqual(seriesOf(after, gone), [], 'still reported')
    assert.ok(inFlight(kept).test(after), 'the other partner is still reported')
    // the history stays: requests it served are still counted
    assert.ok(new RegExp(`^relaykey_requests_total\\{partner="${gone}",outcome="forwarded"\\} 4$`, 'm').test(after), 'the four requests to the deleted partner are still counted')
  })
})

describe('a node that missed a partner\'s deletion', () => {
  let db: TestDatabase
  let p: MockPartner
  let redisProxy: TcpFaultProxy
  let nodeA: RelayKeyProcess
  let nodeB: RelayKeyProcess
  before(async () => {
    db = await createTestDatabase()
    p = await startMockPartner()
    const redis = new URL(TEST_REDIS_URL)
    redisProxy = await TcpFaultProxy.start({ host: redis.hostname, port: Number(redis.port || 6379) })
    const env = distributedEnv(db.url)
    nodeA = await startRelayKey({ env, workers: 1 })
    // node B reaches Redis (its subscriber to the invalidations included) through the proxy
    const throughProxy = new URL(TEST_REDIS_URL)
    throughProxy.port = String(redisProxy.port)
    nodeB = await startRelayKey({ env: { ...env, REDIS_URL: throughProxy.toString() }, workers: 1 })
  })
  after(async () => {
    redisProxy.pass()
    await nodeA?.stop()
    await nodeB?.stop()
    await redisProxy?.close()
    await p?.close()
    await db?.drop()
  })

  it('forgets it once its Redis subscriber reconnects', async () => {
    const gone = uniqueSlug('gone')
    const setup = await partnerWith(nodeA, p.url, gone, {})
    assert.equal((await call(nodeB, setup.key, `${gone}/x`)).status, 200)
    assert.ok(inFlight(gone).test(await metricsText(nodeB)), 'node B holds state for the partner')

    // node B hears nothing while node A deletes the partner
    redisProxy.blackhole()
    assert.equal((await nodeA.admin('DELETE', `/admin/partners/${gone}`)).status, 204)
    await sleep(500)
    assert.ok(inFlight(gone).test(await metricsText(nodeB)), 'node B missed the deletion')

    // its connections come back: the resubscribed node checks the partners it knows
    redisProxy.pass()
    redisProxy.resetAll()
    const after = await scrapeUntilGone(nodeB, gone, 10_000)
    assert.deepEqual(seriesOf(after, gone), [], 'still reported')
  })
})
