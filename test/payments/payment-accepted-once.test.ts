// The module's calls in the order the proxy makes them (src/payments/index.ts), with x402's own
// client paying, a facilitator on a real socket and the embedded replay guard: a payment is
// verified, settled and answered with a PAYMENT-RESPONSE the payer reads; sent again it is
// refused; a payment that was never served can be sent again.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { x402Client, x402HTTPClient } from '@x402/core/client'
import { decodePaymentRequiredHeader } from '@x402/core/http'
import {
  compilePayment, FacilitatorClient, PAYMENT_REPLAYED_REASON, PAYMENT_REQUIRED_REASON, paymentRequired, paymentResponseHeaders,
  priceFor, readPayment, type CompiledPayment,
} from '../../src/payments/index.js'
import { openSqliteReplayGuard, type SqliteReplayGuard } from '../../src/store/sqlite/sqlite-replay-guard.js'
import { MockFacilitator, TRANSACTION } from './mock-facilitator.js'
import { RESOURCE, paymentSettings, recordingLogger } from './payment-fixtures.js'
import { payV2 } from './payer.js'

describe('a payment is accepted once', () => {
  let dir: string
  let mock: MockFacilitator
  let guard: SqliteReplayGuard
  let facilitators: FacilitatorClient
  let payment: CompiledPayment
  const { logger, lines } = recordingLogger()

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relaykey-payments-'))
    mock = await MockFacilitator.start()
    guard = openSqliteReplayGuard(join(dir, 'relaykey.db'))
    facilitators = new FacilitatorClient({ logger })
    payment = compilePayment(paymentSettings({ facilitator_url: mock.url }))
  })
  after(async () => {
    await facilitators.close()
    await guard.close()
    await mock.close()
    await rm(dir, { recursive: true, force: true })
  })

  /** steps 1 to 4 of the proxy; the refusal's reason, or null when the request may go upstream */
  async function admit (signature: string | undefined): Promise<{ refused: string | null; read: ReturnType<typeof readPayment> }> {
    const price = priceFor(payment, 'GET', '/reports/42')!
    const read = readPayment(payment, price, signature, undefined, RESOURCE)
    if (!read.ok) return { refused: read.reason, read }
    if (!await guard.claim(read.payment.replayKey, read.payment.claimTtlMs)) return { refused: PAYMENT_REPLAYED_REASON, read }
    const verified = await facilitators.verify(read.payment)
    if (!verified.ok) {
      await guard.release(read.payment.replayKey)
      return { refused: verified.reason, read }
    }
    return { refused: null, read }
  }

  it('asks, is paid, settles, and the payer reads the settlement', async () => {
    const first = await admit(undefined)
    assert.equal(first.refused, PAYMENT_REQUIRED_REASON)
    const answer = paymentRequired(payment, payment.defaultPrice, RESOURCE, PAYMENT_REQUIRED_REASON, 'req-1')
    assert.equal(decodePaymentRequiredHeader(answer.header).accepts[0]!.amount, '10000')

    const signature = await payV2(answer.header)
    const paid = await admit(signature)
    assert.equal(paid.refused, null)
    assert.ok(paid.read.ok)
    const settled = await facilitators.settle(paid.read.payment)
    assert.ok(settled.ok)
    const headers = paymentResponseHeaders(paid.read.payment.version, settled.response)
    const payer = new x402HTTPClient(new x402Client())
    const receipt = payer.getPaymentSettleResponse((name) => (name.toLowerCase() === headers[0] ? headers[1]! : null))
    assert.equal(receipt.success, true)
    assert.equal(receipt.transaction, TRANSACTION)

    assert.equal((await admit(signature)).refused, PAYMENT_REPLAYED_REASON)
    assert.equal(mock.callsTo('/verify').length, 1, 'the replay never reached the facilitator')
  })

  it('lets the payer send again a payment the facilitator refused, and refuses it again', async () => {
    const signature = await payV2(paymentRequired(payment, payment.defaultPrice, RESOURCE, PAYMENT_REQUIRED_REASON, 'req-2').header)
    mock.plan('/verify', { kind: 'json', status: 200, body: { isValid: false, invalidReason: 'insufficient_funds' } }, { kind: 'json', status: 200, body: { isValid: true } })
    assert.equal((await admit(signature)).refused, 'insufficient_funds')
    assert.equal((await admit(signature)).refused, null, 'funded now')
    assert.equal((await admit(signature)).refused, PAYMENT_REPLAYED_REASON)
  })

  it('lets 20 concurrent sends of one payment through once', async () => {
    mock.plan('/verify')
    const signature = await payV2(paymentRequired(payment, payment.defaultPrice, RESOURCE, PAYMENT_REQUIRED_REASON, 'req-3').header)
    const results = await Promise.all(Array.from({ length: 20 }, () => admit(signature)))
    assert.equal(results.filter((r) => r.refused === null).length, 1)
    assert.equal(results.filter((r) => r.refused === PAYMENT_REPLAYED_REASON).length, 19)
  })

  it('never logged a payment', () => {
    const logged = lines.join('\n')
    assert.ok(!/signature|authorization|nonce/i.test(logged), logged)
  })
})
