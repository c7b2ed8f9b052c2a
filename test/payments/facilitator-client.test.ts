// The facilitator client against a facilitator on a real socket: the request bodies the x402
// facilitator API expects, the three verify outcomes, and every way of not answering well
// (down, slow, redirect, garbage, wrong shape, 5xx) ending as "facilitator failed", with /verify
// retried a bounded number of times and /settle never.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { decodePaymentResponseHeader } from '@x402/core/http'
import { compilePayment, type CompiledPayment } from '../../src/payments/compile-payment.js'
import { FacilitatorClient } from '../../src/payments/facilitator-client.js'
import { paymentRequired, PAYMENT_REQUIRED_REASON } from '../../src/payments/payment-required.js'
import { readPayment, type AcceptedPayment } from '../../src/payments/read-payment.js'
import { paymentResponseHeaders } from '../../src/payments/x402-headers.js'
import { MockFacilitator, TRANSACTION } from './mock-facilitator.js'
import { RESOURCE, paymentSettings, recordingLogger } from './payment-fixtures.js'
import { decode, payV2 } from './payer.js'

const FAST = { verifyTimeoutMs: 300, settleTimeoutMs: 300, retryDelayMs: 10 }

async function acceptedPayment (payment: CompiledPayment): Promise<{ accepted: AcceptedPayment; header: string }> {
  const header = await payV2(paymentRequired(payment, payment.defaultPrice, RESOURCE, PAYMENT_REQUIRED_REASON, 'req').header)
  const read = readPayment(payment, payment.defaultPrice, header, undefined, RESOURCE)
  assert.ok(read.ok)
  return { accepted: read.payment, header }
}

/** a port nothing listens on */
async function closedPort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  server.close()
  await once(server, 'close')
  return port
}

describe('facilitator client', () => {
  let mock: MockFacilitator
  let payment: CompiledPayment
  const { logger, lines } = recordingLogger()
  let client: FacilitatorClient

  before(async () => {
    mock = await MockFacilitator.start()
    payment = compilePayment(paymentSettings({ facilitator_url: `${mock.url}/` }))
    client = new FacilitatorClient({ logger, ...FAST })
  })
  after(async () => {
    await client.close()
    await mock.close()
  })

  function fresh (): void {
    mock.calls.length = 0
    mock.plan('/verify')
    mock.plan('/settle')
    mock.plan('/supported')
  }

  it('verifies with the facilitator API body: our requirement and the payload as sent', async () => {
    fresh()
    const { accepted, header } = await acceptedPayment(payment)
    assert.deepEqual(await client.verify(accepted), { ok: true, payer: '0x' + 'a1'.repeat(20) })
    const [call] = mock.callsTo('/verify')
    assert.equal(call?.method, 'POST')
    assert.deepEqual(call?.body, { x402Version: 2, paymentPayload: decode(header), paymentRequirements: payment.defaultPrice.requirement })
  })

  it('settles with the same body and hands back a PAYMENT-RESPONSE x402 decodes', async () => {
    fresh()
    const { accepted, header } = await acceptedPayment(payment)
    const settled = await client.settle(accepted)
    assert.ok(settled.ok)
    assert.deepEqual(settled.response, { success: true, transaction: TRANSACTION, network: 'eip155:84532', payer: '0x' + 'a1'.repeat(20) })
    assert.deepEqual(mock.callsTo('/settle')[0]?.body, { x402Version: 2, paymentPayload: decode(header), paymentRequirements: payment.defaultPrice.requirement })
    const headers = paymentResponseHeaders(2, settled.response)
    assert.equal(headers[0], 'payment-response')
    assert.deepEqual(decodePaymentResponseHeader(headers[1]!), settled.response)
    assert.deepEqual(paymentResponseHeaders(1, settled.response), ['payment-response', headers[1], 'x-payment-response', headers[1]])
  })

  it('reports a payment the facilitator refuses as invalid, with its reason, answered 200 or 400', async () => {
    fresh()
    const { accepted } = await acceptedPayment(payment)
    mock.plan('/verify',
      { kind: 'json', status: 200, body: { isValid: false, invalidReason: 'insufficient_funds', payer: '0x1' } },
      { kind: 'json', status: 400, body: { isValid: false, invalidReason: 'invalid_exact_evm_payload_signature\u0000' } })
    assert.deepEqual(await client.verify(accepted), { ok: false, code: 'payment_invalid', reason: 'insufficient_funds' })
    assert.deepEqual(await client.verify(accepted), { ok: false, code: 'payment_invalid', reason: 'invalid_exact_evm_payload_signature ' })
  })

  it('reports a failed settlement with the facilitator answer for PAYMENT-RESPONSE', async () => {
    fresh()
    const { accepted } = await acceptedPayment(payment)
    mock.plan('/settle', { kind: 'json', status: 400, body: { success: false, errorReason: 'invalid_transaction_state', transaction: '', network: 'eip155:84532', extensionResponses: { a: 1 } } })
    const settled = await client.settle(accepted)
    assert.deepEqual(settled, {
      ok: false,
      code: 'settle_failed',
      reason: 'invalid_transaction_state',
      response: { success: false, transaction: '', network: 'eip155:84532', errorReason: 'invalid_transaction_state' },
    })
  })

  const broken: Array<[string, () => Promise<void>]> = [
    ['garbage', async () => mock.plan('/verify', { kind: 'text', status: 200, body: '<html>gateway</html>' })],
    ['the wrong shape', async () => mock.plan('/verify', { kind: 'json', status: 200, body: { valid: true } })],
    ['isValid as a string', async () => mock.plan('/verify', { kind: 'json', status: 200, body: { isValid: 'true' } })],
    ['isValid true with a 4xx', async () => mock.plan('/verify', { kind: 'json', status: 402, body: { isValid: true } })],
    ['a redirect', async () => mock.plan('/verify', { kind: 'redirect' })],
    ['a 4xx without a verify answer', async () => mock.plan('/verify', { kind: 'json', status: 404, body: { error: 'no route' } })],
  ]
  for (const [what, arrange] of broken) {
    it(`fails on ${what} from /verify, once, without a free pass`, async () => {
      fresh()
      const { accepted } = await acceptedPayment(payment)
      await arrange()
      const outcome = await client.verify(accepted)
      assert.equal(outcome.ok, false)
      assert.equal(!outcome.ok && outcome.code, 'facilitator_failed')
      assert.equal(mock.callsTo('/verify').length, 1, 'not retried')
      assert.equal(mock.calls.filter((c) => c.path.includes('followed')).length, 0, 'redirect not followed')
    })
  }

  it('fails on a slow /verify within its timeout, and does not wait again', async () => {
    fresh()
    const { accepted } = await acceptedPayment(payment)
    mock.plan('/verify', { kind: 'slow', ms: 2000 })
    const started = Date.now()
    const outcome = await client.verify(accepted)
    assert.equal(!outcome.ok && outcome.code, 'facilitator_failed')
    assert.match(!outcome.ok ? outcome.reason : '', /too slow/)
    assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`)
    assert.equal(mock.callsTo('/verify').length, 1)
  })

  it('fails on a /verify answer that trickles in, at its deadline for the whole answer', async () => {
    fresh()
    const { accepted } = await acceptedPayment(payment)
    mock.plan('/verify', { kind: 'trickle', everyMs: 50 })
    const started = Date.now()
    const outcome = await client.verify(accepted)
    assert.match(!outcome.ok ? outcome.reason : '', /too slow/)
    assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`)
  })

  it('retries /verify after 5xx and dropped connections, at most twice', async () => {
    fresh()
    const { accepted } = await acceptedPayment(payment)
    mock.plan('/verify', { kind: 'json', status: 503, body: {} }, { kind: 'drop' }, { kind: 'json', status: 500, body: {} })
    const outcome = await client.verify(accepted)
    assert.equal(!outcome.ok && outcome.code, 'facilitator_failed')
    assert.equal(mock.callsTo('/verify').length, 3)
  })

  it('succeeds when a /verify retry gets an answer', async () => {
    fresh()
    const { accepted } = await acceptedPayment(payment)
    mock.plan('/verify', { kind: 'drop' }, { kind: 'json', status: 200, body: { isValid: true } })
    assert.deepEqual(await client.verify(accepted), { ok: true, payer: null })
    assert.equal(mock.callsTo('/verify').length, 2)
  })

  const settleBroken: Array<[string, () => void]> = [
    ['a 500', () => mock.plan('/settle', { kind: 'json', status: 500, body: { success: false } }, { kind: 'json', status: 200, body: { success: true, transaction: '0x1', network: 'eip155:84532' } })],
    ['a dropped connection', () => mock.plan('/settle', { kind: 'drop' }, { kind: 'json', status: 200, body: { success: true, transaction: '0x1', network: 'eip155:84532' } })],
    ['a slow answer', () => mock.plan('/settle', { kind: 'slow', ms: 2000 })],
    ['a redirect', () => mock.plan('/settle', { kind: 'redirect' })],
    ['garbage', () => mock.plan('/settle', { kind: 'text', status: 200, body: 'OK' })],
    ['success without a transaction', () => mock.plan('/settle', { kind: 'json', status: 200, body: { success: true, network: 'eip155:84532' } })],
  ]
  for (const [what, arrange] of settleBroken) {
    it(`fails on ${what} from /settle and never retries it`, async () => {
      fresh()
      const { accepted } = await acceptedPayment(payment)
      arrange()
      const outcome = await client.settle(accepted)
      assert.equal(!outcome.ok && outcome.code, 'facilitator_failed')
      assert.equal(mock.callsTo('/settle').length, 1)
    })
  }

  it('fails when the facilitator is down, after the bounded /verify retries', async () => {
    const down = compilePayment(paymentSettings({ facilitator_url: `http://127.0.0.1:${await closedPort()}` }))
    const { accepted } = await acceptedPayment(down)
    const verified = await client.verify(accepted)
    assert.deepEqual(verified, { ok: false, code: 'facilitator_failed', reason: 'payment facilitator failed: /verify unreachable (ECONNREFUSED)' })
    assert.equal((await client.settle(accepted)).ok, false)
  })

  it('checks /supported: listed, not listed, or unreachable, warning and never throwing', async () => {
    fresh()
    assert.deepEqual(await client.checkSupported(payment), { ok: true })
    const before = lines.length
    mock.plan('/supported', { kind: 'json', status: 200, body: { kinds: [{ x402Version: 2, scheme: 'exact', network: 'eip155:8453' }] } })
    assert.match(JSON.stringify(await client.checkSupported(payment)), /does not list scheme exact on eip155:84532/)
    mock.plan('/supported', { kind: 'json', status: 200, body: { kinds: [{ x402Version: 2, scheme: 'exact', network: 'eip155:*' }] } })
    assert.deepEqual(await client.checkSupported(payment), { ok: true })
    mock.plan('/supported', { kind: 'text', status: 200, body: 'nope' })
    assert.equal((await client.checkSupported(payment)).ok, false)
    const down = compilePayment(paymentSettings({ facilitator_url: `http://127.0.0.1:${await closedPort()}` }))
    assert.equal((await client.checkSupported(down)).ok, false)
    assert.equal(lines.slice(before).filter((l) => l.includes('x402 facilitator check failed')).length, 3)
  })

  it('logs failures with the facilitator origin only, never a payment', async () => {
    fresh()
    const secretPath = compilePayment(paymentSettings({ facilitator_url: `${mock.url}/api-key-s3cr3t` }))
    const { accepted, header } = await acceptedPayment(secretPath)
    const before = lines.length
    mock.plan('/verify')
    await client.verify(accepted)
    const logged = lines.slice(before).join('\n')
    assert.match(logged, /x402 facilitator failed/)
    assert.ok(!logged.includes('s3cr3t'))
    const payload = decode(header)
    for (const secret of [header, payload.payload.signature, payload.payload.authorization.nonce]) assert.ok(!logged.includes(secret))
  })
})
