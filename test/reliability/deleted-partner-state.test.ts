// A deleted partner leaves nothing behind in the workers: its breakers, retry budget and
// concurrency gate go, and with them its series of the reliability metrics, while another
// partner's stay.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { call, metricsText, partnerWith, uniqueSlug } from './reliability-harness.js'

describe('a deleted partner\'s reliability state', () => {
  let rk: RelayKeyProcess
  let p: MockPartner
  before(async () => {
    rk = await startRelayKey({ workers: 2 })
    p = await startMockPartner()
  })
  after(async () => {
    await rk.stop()
    await p.close()
  })

  it('is dropped from every worker, and its metric series with it', async () => {
    const gone = uniqueSlug('gone')
    const kept = uniqueSlug('kept')
    const setups = [await partnerWith(rk, p.url, gone, {}), await partnerWith(rk, p.url, kept, {})]
    for (const [i, slug] of [gone, kept].entries()) {
      for (let n = 0; n < 4; n++) assert.equal((await call(rk, setups[i]!.key, `${slug}/x`)).status, 200)
    }
    const inFlight = (slug: string): RegExp => new RegExp(`^relaykey_upstream_in_flight\\{partner="${slug}"\\} 0$`, 'm')
    const before = await metricsText(rk)
    assert.ok(inFlight(gone).test(before) && inFlight(kept).test(before), 'both partners reported before the deletion')

    assert.equal((await rk.admin('DELETE', `/admin/partners/${gone}`)).status, 204)
    let after = before
    for (let i = 0; i < 40 && inFlight(gone).test(after); i++) {
      await sleep(100)
      after = await metricsText(rk)
    }
    for (const line of after.split('\n').filter((l) => /^relaykey_(circuit_open|circuit_openings_total|upstream_in_flight|concurrency_refusals_total|retry_budget_exhausted_total)\{/.test(l))) {
      assert.ok(!line.includes(`partner="${gone}"`), `still reported: ${line}`)
    }
    assert.ok(inFlight(kept).test(after), 'the other partner is still reported')
    // the history stays: requests it served are still counted
    assert.ok(new RegExp(`^relaykey_requests_total\\{partner="${gone}",outcome="forwarded"\\} 4$`, 'm').test(after), 'the four requests to the deleted partner are still counted')
  })
})
