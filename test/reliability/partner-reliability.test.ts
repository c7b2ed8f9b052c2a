// A worker's reliability state outlives the key contexts that borrow it: a partner's settings
// change or its slug is renamed, and the retry budget, the concurrency gate and the breakers
// carry on — only the metrics' partner label follows the new slug. A deleted partner's state
// goes, all of it, and nobody else's.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { PartnerReliability } from '../../src/reliability/partner-reliability.js'
import { defaultCircuitBreaker, defaultRetry } from '../../src/store/model.js'

describe('partner reliability state', () => {
  const retry = { ...defaultRetry(), budget_percent: 0, budget_min_per_second: 1 }
  const breaker = defaultCircuitBreaker()

  it('keeps the retry budget and the gate when the partner is renamed', () => {
    const reliability = new PartnerReliability({ workers: 1 })
    const before = reliability.partner('prt_1', 'acme', retry, breaker)
    const now = Date.now()
    let granted = 0
    while (before.budget.tryRetry(now)) granted++ // no requests: only the per-second allowance
    assert.ok(granted >= 1)
    assert.equal(before.gate.tryEnter(), true)

    const after = reliability.partner('prt_1', 'acme-renamed', retry, breaker)
    assert.equal(after.slug, 'acme-renamed')
    assert.equal(after.budget.tryRetry(now), false, 'a rename must not hand out a fresh budget')
    assert.equal(after.gate.inFlight, 1, 'the request in flight still counts')
    const snapshot = reliability.snapshot()
    assert.deepEqual(snapshot.map((s) => [s.partner, s.inFlight, s.retryBudgetExhausted]), [['acme-renamed', 1, 2]])
  })

  it('forgets a deleted partner: its guards and the breakers of its environments and credentials', () => {
    const reliability = new PartnerReliability({ workers: 1 })
    for (const [id, slug] of [['prt_gone', 'gone'], ['prt_kept', 'kept']]) {
      reliability.partner(id, slug, retry, breaker).gate.tryEnter()
      reliability.environmentBreaker(id, 'production', slug, breaker)
      reliability.credentialBreaker(`cred_${slug}`, id, slug, breaker)
    }
    assert.deepEqual(reliability.snapshot().map((s) => s.partner).sort(), ['gone', 'kept'])

    reliability.forgetPartner('prt_gone')
    assert.deepEqual(reliability.snapshot().map((s) => [s.partner, s.inFlight]), [['kept', 1]])
    // asked for again (a context built from a read taken before the deletion): it gets state
    // that nobody tracks, so the partner does not come back in the metrics
    assert.equal(reliability.partner('prt_gone', 'gone', retry, breaker).gate.inFlight, 0)
    reliability.environmentBreaker('prt_gone', 'production', 'gone', breaker)
    reliability.credentialBreaker('cred_gone', 'prt_gone', 'gone', breaker)
    assert.deepEqual(reliability.snapshot().map((s) => s.partner), ['kept'])
    assert.deepEqual(reliability.partnerIds(), ['prt_kept'])
  })
})
