// The 402 answer: a v2 PaymentRequired in the PAYMENT-REQUIRED header that x402's own schema and
// client accept, the same object as the JSON body with the contract's error object in place of
// the reason string, offering the price of the endpoint asked for.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { x402Client, x402HTTPClient } from '@x402/core/client'
import { decodePaymentRequiredHeader } from '@x402/core/http'
import { parsePaymentRequired } from '@x402/core/schemas'
import { compilePayment, priceFor } from '../../src/payments/compile-payment.js'
import { PAYMENT_REQUIRED_REASON, paymentRequired } from '../../src/payments/payment-required.js'
import { ASSET, PAY_TO, RESOURCE, paymentSettings } from './payment-fixtures.js'

describe('402 payment required answer', () => {
  const payment = compilePayment(paymentSettings({ prices: [{ method: 'POST', path: '/reports', amount: '50000' }] }))

  it('carries a v2 PaymentRequired header that x402 parses', () => {
    const answer = paymentRequired(payment, priceFor(payment, 'GET', '/reports/42')!, RESOURCE, PAYMENT_REQUIRED_REASON, 'req-1')
    const object = decodePaymentRequiredHeader(answer.header)
    assert.deepEqual(object, {
      x402Version: 2,
      error: 'Payment required',
      resource: { url: RESOURCE, description: 'Acme reports', mimeType: '' },
      accepts: [{
        scheme: 'exact', network: 'eip155:84532', amount: '10000', asset: ASSET, payTo: PAY_TO, maxTimeoutSeconds: 60,
        extra: { name: 'USDC', version: '2' },
      }],
    })
    const parsed = parsePaymentRequired(object)
    assert.ok(parsed.success, JSON.stringify(parsed.error?.issues))
    const client = new x402HTTPClient(new x402Client())
    assert.deepEqual(client.getPaymentRequiredResponse((name) => (name === 'PAYMENT-REQUIRED' ? answer.header : null)), object)
  })

  it('has the same object as body, with the contract error in place of the reason', () => {
    const answer = paymentRequired(payment, payment.defaultPrice, RESOURCE, 'No matching payment requirements', 'req-2')
    const header = decodePaymentRequiredHeader(answer.header)
    const body = JSON.parse(answer.body)
    assert.deepEqual(body.error, { code: 'payment_required', message: 'No matching payment requirements', request_id: 'req-2' })
    assert.equal(header.error, body.error.message)
    assert.deepEqual({ ...body, error: header.error }, header)
    assert.deepEqual(Object.keys(body), ['x402Version', 'error', 'resource', 'accepts'])
  })

  it('offers the price of the endpoint asked for', () => {
    const answer = paymentRequired(payment, priceFor(payment, 'POST', '/reports')!, RESOURCE, PAYMENT_REQUIRED_REASON, 'req-3')
    assert.equal(decodePaymentRequiredHeader(answer.header).accepts[0]!.amount, '50000')
    assert.equal(JSON.parse(answer.body).accepts[0].amount, '50000')
  })

  it('escapes what the client controls: the resource URL and the request id', () => {
    const url = 'http://relaykey.test/proxy/acme/a"b\\c?q=</script>'
    const answer = paymentRequired(payment, payment.defaultPrice, url, 'reason "quoted"', 'id"1')
    const body = JSON.parse(answer.body)
    assert.equal(body.resource.url, url)
    assert.equal(body.error.request_id, 'id"1')
    assert.equal(decodePaymentRequiredHeader(answer.header).error, 'reason "quoted"')
  })

  it('says an empty description when the policy has none', () => {
    const bare = compilePayment(paymentSettings({ description: null }))
    const answer = paymentRequired(bare, bare.defaultPrice, RESOURCE, PAYMENT_REQUIRED_REASON, 'req-4')
    assert.deepEqual(decodePaymentRequiredHeader(answer.header).resource, { url: RESOURCE, description: '', mimeType: '' })
  })
})
