import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { KeyCache } from '../../src/gateway/key-cache.js'
import type { KeyContext } from '../../src/gateway/key-context.js'

function context (keyId: string, policyId = 'pol_1', partnerIds: string[] = ['prt_1']): KeyContext {
  return { keyId, policy: { id: policyId }, partnerIds } as unknown as KeyContext
}

describe('key cache', () => {
  it('evicts the least recently used entry when full', () => {
    const cache = new KeyCache({ max: 2, ttlMs: 60_000 })
    cache.set('a', context('k_a'), cache.epoch)
    cache.set('b', context('k_b'), cache.epoch)
    assert.ok(cache.get('a'))
    cache.set('c', context('k_c'), cache.epoch)
    assert.equal(cache.get('b'), undefined)
    assert.ok(cache.get('a'))
    assert.ok(cache.get('c'))
  })

  it('expires entries after the TTL even without an invalidation', () => {
    let now = 1000
    const cache = new KeyCache({ max: 10, ttlMs: 500, now: () => now })
    cache.set('a', context('k_a'), cache.epoch)
    now = 1499
    assert.ok(cache.get('a'))
    now = 1500
    assert.equal(cache.get('a'), undefined)
  })

  it('expires an entry no later than what it was built on (notAfter)', () => {
    let now = 1000
    const cache = new KeyCache({ max: 10, ttlMs: 500, now: () => now })
    cache.set('a', context('k_a'), cache.epoch, 1200)
    now = 1199
    assert.ok(cache.get('a'))
    now = 1200
    assert.equal(cache.get('a'), undefined)
  })

  it('drops entries by key, policy and partner, and everything on "all"', () => {
    const cache = new KeyCache({ max: 10, ttlMs: 60_000 })
    cache.set('a', context('k_a', 'pol_1', ['prt_1']), cache.epoch)
    cache.set('b', context('k_b', 'pol_2', ['prt_2']), cache.epoch)
    cache.set('c', context('k_c', 'pol_2', ['prt_3']), cache.epoch)
    cache.invalidate({ kind: 'key', id: 'k_a' })
    assert.equal(cache.get('a'), undefined)
    cache.invalidate({ kind: 'partner', id: 'prt_2' })
    assert.equal(cache.get('b'), undefined)
    assert.ok(cache.get('c'))
    cache.invalidate({ kind: 'policy', id: 'pol_2' })
    assert.equal(cache.get('c'), undefined)
    cache.set('d', context('k_d'), cache.epoch)
    cache.invalidate({ kind: 'all' })
    assert.equal(cache.stats().size, 0)
  })

  it('refuses to store a context loaded before an invalidation (no stale write-back)', () => {
    const cache = new KeyCache({ max: 10, ttlMs: 60_000 })
    const epochAtLoadStart = cache.epoch
    cache.invalidate({ kind: 'key', id: 'k_a' })
    assert.equal(cache.set('a', context('k_a'), epochAtLoadStart), false)
    assert.equal(cache.get('a'), undefined)
  })
})
