// The replay key names the payment, not its encoding: re-encoding, reordering, extra members,
// another signature for the same authorization, or sending it as v1 instead of v2 is the same
// payment; another nonce or payer is another one. The claim lasts as long as the payment can be used.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { claimTtlMs, replayKey } from '../../src/payments/replay-key.js'

const NETWORK = 'eip155:84532'
const ASSET = '0x036CbD53842c5426634e7929541eC2318f3dCF7e'
const NOW = Date.parse('2026-03-15T12:00:00.000Z')

function eip3009 (overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    signature: '0x' + '11'.repeat(65),
    authorization: {
      from: '0xA1a1A1a1a1A1a1a1a1A1a1a1a1A1a1a1a1A1a1A1',
      to: '0x' + 'b2'.repeat(20),
      value: '10000',
      validAfter: String(NOW / 1000 - 600),
      validBefore: String(NOW / 1000 + 60),
      nonce: '0x' + '0f'.repeat(32),
      ...overrides,
    },
  }
}

const key = (payload: Record<string, unknown>, asset = ASSET): string => replayKey('exact', NETWORK, asset, payload)

describe('replay key', () => {
  it('is the same for the same EIP-3009 authorization however it is written', () => {
    const base = key(eip3009())
    const a = eip3009() as { authorization: Record<string, unknown> }
    const reordered = { authorization: Object.fromEntries(Object.entries(a.authorization).reverse()), signature: '0x' + '22'.repeat(65), note: 'x' }
    assert.equal(key(reordered), base)
    assert.equal(key(eip3009({ from: '0xa1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1', nonce: '0x' + '0F'.repeat(32) })), base)
    assert.equal(key(eip3009(), ASSET.toLowerCase()), base)
  })

  it('differs for another nonce, payer, asset or network', () => {
    const base = key(eip3009())
    assert.notEqual(key(eip3009({ nonce: '0x' + '0e'.repeat(32) })), base)
    assert.notEqual(key(eip3009({ from: '0x' + 'c3'.repeat(20) })), base)
    assert.notEqual(key(eip3009(), '0x' + 'd4'.repeat(20)), base)
    assert.notEqual(replayKey('exact', 'eip155:8453', ASSET, eip3009()), base)
  })

  it('keys Permit2 payments on their own nonce, as one number however written', () => {
    const permit2 = (nonce: string, signature: string) => ({ signature, permit2Authorization: { from: '0x' + 'a1'.repeat(20), nonce, deadline: '1' } })
    assert.equal(key(permit2('255', '0x01')), key(permit2('0xff', '0x02')))
    assert.notEqual(key(permit2('255', '0x01')), key(permit2('256', '0x01')))
    assert.notEqual(key(permit2('255', '0x01')), key({ authorization: { from: '0x' + 'a1'.repeat(20), nonce: '255' } }))
  })

  it('falls back to the canonical JSON of other payloads, member order aside', () => {
    assert.equal(key({ transaction: 'AQID', meta: { b: 1, a: [1, { d: 2, c: 3 }] } }), key({ meta: { a: [1, { c: 3, d: 2 }], b: 1 }, transaction: 'AQID' }))
    assert.notEqual(key({ transaction: 'AQID' }), key({ transaction: 'AQIE' }))
  })
})

describe('claim ttl', () => {
  it('lasts until the authorization expires, plus clock skew', () => {
    const validBefore = NOW / 1000 + 600
    assert.equal(claimTtlMs(eip3009({ validBefore: String(validBefore) }), 60, NOW), 630_000)
    assert.equal(claimTtlMs(eip3009({ validBefore }), 60, NOW), 630_000)
  })

  it('lasts at least max_timeout_seconds, and two minutes', () => {
    assert.equal(claimTtlMs(eip3009({ validBefore: String(NOW / 1000 - 10) }), 600, NOW), 600_000)
    assert.equal(claimTtlMs({ transaction: 'AQID' }, 60, NOW), 120_000)
  })

  it('lasts a day at most, whatever expiry the payer picked', () => {
    assert.equal(claimTtlMs(eip3009({ validBefore: '99999999999' }), 60, NOW), 86_400_000)
  })
})
