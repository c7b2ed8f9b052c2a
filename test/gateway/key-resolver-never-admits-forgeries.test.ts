import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { VirtualKeyCodec } from '../../src/keys/virtual-key.js'
import { KeyCache } from '../../src/gateway/key-cache.js'
import { KeyResolver } from '../../src/gateway/key-resolver.js'
import { SharedPolicyRoutes } from '../../src/gateway/shared-policy-routes.js'

describe('key resolver digest memo', () => {
  const codec = new VirtualKeyCodec(randomBytes(32))
  const resolver = new KeyResolver({
    codec,
    cache: new KeyCache({ max: 10, ttlMs: 1000 }),
    policyRoutes: new SharedPolicyRoutes({ max: 10, ttlMs: 1000 }),
    store: {} as never,
    compile: {} as never,
    loadTimeoutMs: 2000,
    maxRemembered: 4,
  })

  it('remembers the digest of a verified key and never admits a near miss', () => {
    const { key, digest } = codec.issue()
    assert.equal(resolver.digestOf(key), digest.toString('latin1'))
    assert.equal(resolver.digestOf(key), digest.toString('latin1'))
    for (let i = 3; i < key.length; i++) {
      const forged = key.slice(0, i) + (key[i] === 'A' ? 'B' : 'A') + key.slice(i + 1)
      assert.equal(resolver.digestOf(forged), null)
    }
  })

  it('stays bounded and keeps answering correctly after it is full', () => {
    const issued = Array.from({ length: 20 }, () => codec.issue())
    for (const { key, digest } of issued) assert.equal(resolver.digestOf(key), digest.toString('latin1'))
    for (const { key, digest } of issued) assert.equal(resolver.digestOf(key), digest.toString('latin1'))
  })
})
