// The benchmark rotates its targets so that none always runs right after another.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { roundOrder } from '../../bench/lib/round-order.js'

describe('roundOrder', () => {
  const targets = ['bare', 'governed', 'audit-off']

  it('starts one target later each round and comes back after as many rounds as targets', () => {
    assert.deepEqual(roundOrder(targets, 1), ['bare', 'governed', 'audit-off'])
    assert.deepEqual(roundOrder(targets, 2), ['governed', 'audit-off', 'bare'])
    assert.deepEqual(roundOrder(targets, 3), ['audit-off', 'bare', 'governed'])
    assert.deepEqual(roundOrder(targets, 4), roundOrder(targets, 1))
  })

  it('puts every target in every position once over a full rotation', () => {
    for (let position = 0; position < targets.length; position++) {
      const seen = [1, 2, 3].map((round) => roundOrder(targets, round)[position])
      assert.deepEqual([...seen].sort(), [...targets].sort())
    }
  })
})
