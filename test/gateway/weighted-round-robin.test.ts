import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { WeightedRoundRobin } from '../../src/gateway/weighted-round-robin.js'

describe('weighted round-robin', () => {
  it('picks each item exactly weight times per cycle, spread out', () => {
    const wrr = new WeightedRoundRobin(['a', 'b', 'c'], [5, 1, 1])
    const picks = Array.from({ length: 14 }, () => wrr.next())
    assert.equal(picks.join(''), 'aabacaaaabacaa')
    assert.equal(picks.filter((p) => p === 'a').length, 10)
  })

  it('skips unusable items and returns null when none is usable', () => {
    const wrr = new WeightedRoundRobin(['a', 'b'], [1, 1])
    for (let i = 0; i < 4; i++) assert.equal(wrr.next((x) => x !== 'a'), 'b')
    assert.equal(wrr.next(() => false), null)
    const counts = { a: 0, b: 0 }
    for (let i = 0; i < 10; i++) counts[wrr.next()! as 'a' | 'b']++
    assert.deepEqual(counts, { a: 5, b: 5 })
  })
})
