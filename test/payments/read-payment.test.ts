// Reading a client's payment: v2 (PAYMENT-SIGNATURE) and v1 (X-PAYMENT) as x402's client builds
// them, malformed headers refused with a reason, and a payment for a different requirement than
// this request's price refused before any facilitator is asked.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { PaymentRequiredV1 } from '@x402/core/types/v1'
import { compilePayment, priceFor, type CompiledPayment, type Price } from '../../src/payments/compile-payment.js'
import { paymentRequired, PAYMENT_REQUIRED_REASON } from '../../src/payments/payment-required.js'
import { readPayment, type AcceptedPayment, type ReadPaymentResult } from '../../src/payments/read-payment.js'
import { ASSET, PAY_TO, RESOURCE, paymentSettings } from './payment-fixtures.js'
import { decode, encode, payV1, payV2 } from './payer.js'

const payment = compilePayment(paymentSettings({ prices: [{ method: 'POST', path: '/reports', amount: '50000' }] }))
const cheap = priceFor(payment, 'GET', '/reports/42')!
const dear = priceFor(payment, 'POST', '/reports')!

/** what a payer sends after this 402 */
async function signatureFor (price: Price, p: CompiledPayment = payment): Promise<string> {
  return payV2(paymentRequired(p, price, RESOURCE, PAYMENT_REQUIRED_REASON, 'req').header)
}

function v1Offer (price: Price): PaymentRequiredV1 {
  const r = price.requirement
  return {
    x402Version: 1,
    accepts: [{
      scheme: r.scheme, network: 'base-sepolia' as PaymentRequiredV1['accepts'][0]['network'], maxAmountRequired: r.amount, resource: RESOURCE,
      description: '', mimeType: '', outputSchema: {}, payTo: r.payTo, maxTimeoutSeconds: r.maxTimeoutSeconds, asset: r.asset, extra: r.extra,
    }],
  }
}

function accepted (result: ReadPaymentResult): AcceptedPayment {
  assert.ok(result.ok, result.ok ? '' : result.reason)
  return result.payment
}

function refusedWith (result: ReadPaymentResult, pattern: RegExp): void {
  assert.equal(result.ok, false)
  if (!result.ok) assert.match(result.reason, pattern)
}

describe('reading a payment', () => {
  it('asks for payment when neither header is there', () => {
    refusedWith(readPayment(payment, cheap, undefined, undefined, RESOURCE), /^Payment required$/)
  })

  it('accepts a v2 payment for this price, and sends our requirement on, not the echo', async () => {
    const header = await signatureFor(cheap)
    const p = accepted(readPayment(payment, cheap, header, undefined, RESOURCE))
    assert.equal(p.version, 2)
    assert.deepEqual(p.payload, decode(header))
    assert.equal(p.requirements, cheap.requirement)
    assert.equal(p.facilitator, 'http://127.0.0.1:9')
    assert.match(p.replayKey, /^[0-9a-f]{64}$/)
    assert.ok(p.claimTtlMs >= 60_000)
  })

  it('accepts a v1 payment on the v1 name of the network, with v1 requirements for this request', async () => {
    const header = await payV1(v1Offer(cheap))
    const p = accepted(readPayment(payment, cheap, undefined, header, RESOURCE))
    assert.equal(p.version, 1)
    assert.deepEqual(p.payload, decode(header))
    assert.deepEqual(p.requirements, {
      scheme: 'exact', network: 'base-sepolia', maxAmountRequired: '10000', resource: RESOURCE, description: 'Acme reports',
      mimeType: '', outputSchema: {}, payTo: PAY_TO, maxTimeoutSeconds: 60, asset: ASSET, extra: { name: 'USDC', version: '2' },
    })
  })

  it('takes PAYMENT-SIGNATURE when both headers are sent', async () => {
    const v2 = await signatureFor(cheap)
    assert.equal(accepted(readPayment(payment, cheap, v2, 'not even base64!', RESOURCE)).version, 2)
  })

  it('refuses a payment made for a cheaper endpoint', async () => {
    refusedWith(readPayment(payment, dear, await signatureFor(cheap), undefined, RESOURCE), /No matching payment requirements: accepted\.amount/)
  })

  for (const [field, value] of [['payTo', '0x' + 'c3'.repeat(20)], ['asset', '0x' + 'd4'.repeat(20)], ['network', 'eip155:8453'], ['scheme', 'upto']]) {
    it(`refuses a payment whose accepted.${field} differs from the offer`, async () => {
      const p = decode(await signatureFor(cheap))
      p.accepted[field] = value
      refusedWith(readPayment(payment, cheap, encode(p), undefined, RESOURCE), new RegExp(`No matching payment requirements: accepted\\.${field}`))
    })
  }

  it('refuses a v1 payment on another network or scheme', async () => {
    const p = decode(await payV1(v1Offer(cheap)))
    refusedWith(readPayment(payment, cheap, undefined, encode({ ...p, network: 'base' }), RESOURCE), /network/)
    refusedWith(readPayment(payment, cheap, undefined, encode({ ...p, scheme: 'upto' }), RESOURCE), /scheme/)
  })

  it('accepts a v1 payment naming the CAIP-2 network too', async () => {
    const p = decode(await payV1(v1Offer(cheap)))
    const read = accepted(readPayment(payment, cheap, undefined, encode({ ...p, network: 'eip155:84532' }), RESOURCE))
    assert.equal(read.requirements.network, 'eip155:84532')
  })

  it('refuses v1 on a network v1 has no name for, pointing to v2', async () => {
    const other = compilePayment(paymentSettings({ network: 'eip155:999999' }))
    const p = decode(await payV1(v1Offer(cheap)))
    refusedWith(readPayment(other, other.defaultPrice, undefined, encode({ ...p, network: 'eip155:999999' }), RESOURCE), /PAYMENT-SIGNATURE/)
  })

  const malformed: Array<[string, string | undefined, string | undefined, RegExp]> = [
    ['PAYMENT-SIGNATURE that is not base64', 'eyJ@@@', undefined, /PAYMENT-SIGNATURE is not base64 JSON/],
    ['PAYMENT-SIGNATURE that is base64 of no JSON', Buffer.from('{nope').toString('base64'), undefined, /not base64 JSON/],
    ['an empty PAYMENT-SIGNATURE', '', undefined, /not base64 JSON/],
    ['a v1 payload in PAYMENT-SIGNATURE', encode({ x402Version: 1, scheme: 'exact', network: 'base-sepolia', payload: {} }), undefined, /x402Version 2/],
    ['a JSON array', encode([1, 2]), undefined, /x402Version 2/],
    ['no accepted', encode({ x402Version: 2, payload: {} }), undefined, /accepted must be an object/],
    ['a payload that is a string', encode({ x402Version: 2, accepted: {}, payload: 'sig' }), undefined, /payload must be an object/],
    ['X-PAYMENT that is not base64', undefined, '%%%', /X-PAYMENT is not base64 JSON/],
    ['a v2 payload in X-PAYMENT', undefined, encode({ x402Version: 2, accepted: {}, payload: {} }), /x402Version 1/],
    ['a v1 payload without payload', undefined, encode({ x402Version: 1, scheme: 'exact', network: 'base-sepolia' }), /payload must be an object/],
  ]
  for (const [what, signature, xPayment, reason] of malformed) {
    it(`refuses ${what} with a reason`, () => refusedWith(readPayment(payment, cheap, signature, xPayment, RESOURCE), reason))
  }

  it('never repeats the payload in a reason', async () => {
    const p = decode(await signatureFor(cheap))
    p.accepted.amount = '1'
    const result = readPayment(payment, cheap, encode(p), undefined, RESOURCE)
    assert.equal(result.ok, false)
    if (!result.ok) {
      assert.ok(!result.reason.includes(p.payload.signature))
      assert.ok(!result.reason.includes(p.payload.authorization.nonce))
    }
  })
})
