// GET /metrics on the admin port sums every worker: counts match what was sent, whichever
// worker served it, and promtool accepts the real output.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, request } from 'undici'
import { startRelayKey, setUpGovernedPartner } from '../helpers/relaykey-process.js'
import { assertPromtoolAccepts } from '../helpers/promtool.js'
import { startMockPartner } from '../helpers/mock-partner.js'

function sample (text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

describe('/metrics', () => {
  it('aggregates both workers and needs the admin token', async (t) => {
    const partner = await startMockPartner()
    const rk = await startRelayKey({ workers: 2 })
    try {
      const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
      // the set-up's cache invalidations land first, so each worker misses the key once only
      await sleep(300)
      // fresh connections alternate between the two workers
      for (let i = 0; i < 12; i++) {
        const agent = new Agent()
        const res = await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': i < 9 ? setup.key : 'vk_nope' }, dispatcher: agent })
        await res.body.dump()
        await agent.close()
      }
      const unauthenticated = await request(`${rk.adminUrl}/metrics`)
      assert.equal(unauthenticated.statusCode, 401)
      await unauthenticated.body.dump()
      const res = await request(`${rk.adminUrl}/metrics`, { headers: { authorization: `Bearer ${rk.adminToken}` } })
      assert.equal(res.statusCode, 200)
      const text = await res.body.text()
      assert.equal(sample(text, 'relaykey_requests_total{partner="acme",outcome="forwarded"}'), 9)
      assert.equal(sample(text, 'relaykey_requests_total{partner="-",outcome="invalid_key"}'), 3)
      assert.equal(sample(text, 'relaykey_refusals_total{code="invalid_key"}'), 3)
      assert.equal(sample(text, 'relaykey_upstream_responses_total{partner="acme",status_class="2xx"}'), 9)
      assert.equal(sample(text, 'relaykey_request_duration_seconds_count{partner="acme"}'), 9)
      assert.equal(sample(text, 'relaykey_audit_dropped_events_total'), 0)
      // each worker looked the key up once: both served, and both are in the sums
      assert.equal(sample(text, 'relaykey_key_cache_misses_total'), 2)
      assert.equal(sample(text, 'relaykey_key_cache_hits_total'), 7)
      for (const line of text.split('\n')) assert.ok(!line.includes('key_id') && !line.includes('customer'), line)
      assertPromtoolAccepts(t, text)
    } finally {
      await rk.stop()
      await partner.close()
    }
  })
})
