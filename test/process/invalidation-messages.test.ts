// What a node accepts as an invalidation from the cluster channel or from Redis, where another
// node (possibly of another release) published it.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { isInvalidation } from '../../src/store/invalidation.js'

describe('invalidation messages', () => {
  it('accepts every kind, and a partner deletion', () => {
    for (const message of [{ kind: 'all' }, { kind: 'key', id: 'key_1' }, { kind: 'policy', id: 'pol_1' }, { kind: 'partner', id: 'prt_1' }, { kind: 'partner', id: 'prt_1', deleted: true }]) {
      assert.ok(isInvalidation(message), JSON.stringify(message))
    }
  })

  it('refuses what it cannot act on', () => {
    for (const message of [null, 'all', {}, { kind: 'key' }, { kind: 'key', id: 7 }, { kind: 'binding', id: 'b' }, { kind: 'partner', id: 'prt_1', deleted: 'yes' }]) {
      assert.equal(isInvalidation(message), false, JSON.stringify(message))
    }
  })
})
