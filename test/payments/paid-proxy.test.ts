// x402 through the proxy, end to end (CONTRACT §7, docs/payments.md): RelayKey as a real process
// (embedded mode, two workers) with a paid policy made through the admin API, a mock partner
// and a mock facilitator on real sockets, and x402's own client paying. What a payer sees: the
// 402 offer, verify → forward → settle in that order, PAYMENT-RESPONSE, no answer without a
// settled payment, no free pass when the facilitator fails, each payment served once, payment
// headers kept from the partner and the logs, and payment_tx in the audit trail.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { x402Client, x402HTTPClient } from '@x402/core/client'
import { request } from 'undici'
import { decodePaymentRequiredHeader, decodePaymentResponseHeader, decodePaymentSignatureHeader } from '@x402/core/http'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { freePort } from '../helpers/ports.js'
import { setUpGovernedPartner, startRelayKey, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { MockFacilitator, PAYER_ADDRESS, TRANSACTION, type Call } from './mock-facilitator.js'
import {
  auditEventOf, call, createPaidKey, eventually, header, paymentBody, v1OfferFrom, type Answer, type PaidKey,
} from './paid-proxy-client.js'
import { ASSET, PAY_TO } from './payment-fixtures.js'
import { payV1, payV2 } from './payer.js'

const BUFFER_BYTES = 1024
/** in every partner body, so a test can tell whether the partner's answer leaked */
const PARTNER_MARK = 'partner-report-body-7f3a'
const PAID_PATH = 'acme/reports/42?format=pdf'
const FORGED_TX = '0x' + 'ee'.repeat(32)

interface Seen {
  url: string
  /** facilitator /verify and /settle calls made when the partner got the request … */
  callsAtReceive: number
  /** … and when it sent its answer */
  callsAtAnswer: number
}

describe('x402 through the proxy (embedded mode, 2 workers)', () => {
  let partner: MockPartner
  let mock: MockFacilitator
  let rk: RelayKeyProcess
  let plain: GovernedSetup
  let paid: PaidKey
  let down: PaidKey
  const seen: Seen[] = []
  /** every payment header value sent, to look for in the logs */
  const sentPayments: string[] = []

  /** the facilitator's /verify and /settle calls (a /supported check may come at any time) */
  const paymentCalls = (): Call[] => mock.calls.filter((c) => c.path !== '/supported')

  async function pay (path = PAID_PATH, key = paid.key): Promise<{ signature: string; required: Answer }> {
    const required = await call(rk.proxyUrl, path, key)
    assert.equal(required.status, 402, required.text)
    const signature = await payV2(header(required, 'payment-required')!)
    sentPayments.push(signature)
    return { signature, required }
  }

  before(async () => {
    mock = await MockFacilitator.start()
    partner = await startMockPartner()
    partner.handle((req, res) => {
      const url = req.url!
      const entry: Seen = { url, callsAtReceive: paymentCalls().length, callsAtAnswer: -1 }
      seen.push(entry)
      const answer = (status: number, body: string, headers: Record<string, string> = {}): void => {
        entry.callsAtAnswer = paymentCalls().length
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-partner': 'acme', ...headers })
        res.end(body)
      }
      if (url.startsWith('/status/')) return answer(Number(url.split('/')[2]), JSON.stringify({ mark: PARTNER_MARK, refused: true }))
      if (url.startsWith('/spoof')) {
        // a partner that speaks x402 itself, or pretends to
        const forged = Buffer.from(JSON.stringify({ success: true, transaction: FORGED_TX, network: 'eip155:84532' })).toString('base64')
        return answer(200, JSON.stringify({ mark: PARTNER_MARK }), { 'payment-response': forged, 'x-payment-response': forged, 'payment-required': forged })
      }
      if (url.startsWith('/big')) return answer(200, JSON.stringify({ mark: PARTNER_MARK, pad: 'x'.repeat(4 * BUFFER_BYTES) }))
      if (url.startsWith('/chunked-big')) {
        // no Content-Length: the bound is only found while holding the body
        entry.callsAtAnswer = paymentCalls().length
        res.writeHead(200, { 'content-type': 'application/json' })
        for (let i = 0; i < 8; i++) res.write(`"${PARTNER_MARK}${'y'.repeat(BUFFER_BYTES / 2)}"`)
        res.end()
        return
      }
      // the partner takes a while: a settle that did not wait for it would show here
      setTimeout(() => answer(200, JSON.stringify({ mark: PARTNER_MARK, method: req.method, url })), 100)
    })
    rk = await startRelayKey({
      workers: 2,
      // a loaded test machine must not turn a slow store into a 503 (the replay guard's SQLite
      // busy timeout is the governance timeout)
      env: { RELAYKEY_PAYMENT_BUFFER_BYTES: String(BUFFER_BYTES), RELAYKEY_LOG_LEVEL: 'debug', RELAYKEY_GOVERNANCE_TIMEOUT_MS: '2000' },
    })
    plain = await setUpGovernedPartner(rk, { baseUrl: partner.url })
    paid = await createPaidKey(rk, 'acme', paymentBody(mock.url, {
      prices: [
        { method: 'POST', path: '/dear', amount: '50000' },
        { method: 'GET', path: '/free/**', amount: '0' },
      ],
    }))
    down = await createPaidKey(rk, 'acme', paymentBody(`http://127.0.0.1:${await freePort()}`))
  })

  after(async () => {
    await rk?.stop()
    await partner?.close()
    await mock?.close()
  })

  it('asks an unpaid request for payment: 402, PAYMENT-REQUIRED equal to the body but for error, the partner untouched', async () => {
    const received = partner.received.length
    const res = await call(rk.proxyUrl, PAID_PATH, paid.key)
    assert.equal(res.status, 402)
    assert.equal(res.json.error.code, 'payment_required')
    assert.equal(res.json.error.message, 'Payment required')
    assert.equal(res.json.error.request_id, res.requestId)
    const decoded = decodePaymentRequiredHeader(header(res, 'payment-required')!)
    assert.equal(decoded.error, res.json.error.message)
    const { error: _h, ...headerRest } = decoded as any
    const { error: _b, ...bodyRest } = res.json
    assert.deepEqual(headerRest, bodyRest)
    assert.equal(decoded.x402Version, 2)
    assert.deepEqual(decoded.accepts, [{
      scheme: 'exact', network: 'eip155:84532', amount: '10000', asset: ASSET, payTo: PAY_TO,
      maxTimeoutSeconds: 60, extra: { name: 'USDC', version: '2' },
    }])
    assert.equal(decoded.resource.url, `${rk.proxyUrl}/proxy/${PAID_PATH}`)
    assert.equal(decoded.resource.description, 'Acme reports')
    // x402's own client reads it as an offer it can pay
    const client = new x402HTTPClient(new x402Client())
    assert.deepEqual(client.getPaymentRequiredResponse((name) => (name === 'PAYMENT-REQUIRED' ? header(res, 'payment-required')! : null)), decoded)
    assert.equal(partner.received.length, received)
    assert.equal(paymentCalls().length, 0)

    const event = await auditEventOf(rk, paid.keyId, res.requestId)
    assert.equal(event.outcome, 'payment_required')
    assert.equal(event.status, 402)
    assert.equal(event.payment_tx, null)
  })

  it('prices per endpoint: a priced rule overrides the amount, a "0" rule is free', async () => {
    const dear = await call(rk.proxyUrl, 'acme/dear', paid.key, {}, 'POST')
    assert.equal(dear.status, 402)
    assert.equal(decodePaymentRequiredHeader(header(dear, 'payment-required')!).accepts[0]!.amount, '50000')
    assert.equal(dear.json.accepts[0].amount, '50000')

    const calls = paymentCalls().length
    const received = partner.received.length
    const free = await call(rk.proxyUrl, 'acme/free/item', paid.key)
    assert.equal(free.status, 200, free.text)
    assert.equal(free.json.url, '/free/item')
    assert.equal(header(free, 'payment-response'), undefined)
    assert.equal(partner.received.length, received + 1)
    assert.equal(paymentCalls().length, calls, 'a free endpoint costs no facilitator call')

    // a payment made for the cheap endpoint does not buy the dear one
    const { signature } = await pay()
    const wrong = await call(rk.proxyUrl, 'acme/dear', paid.key, { 'payment-signature': signature }, 'POST')
    assert.equal(wrong.status, 402)
    assert.match(wrong.json.error.message, /accepted\.amount/)
    assert.equal(paymentCalls().length, calls)

    // paid at its own price, it is served and the facilitator is asked for 50000
    const dearSignature = await payV2(header(dear, 'payment-required')!)
    sentPayments.push(dearSignature)
    const served = await call(rk.proxyUrl, 'acme/dear', paid.key, { 'payment-signature': dearSignature }, 'POST')
    assert.equal(served.status, 200, served.text)
    const [verify, settle] = paymentCalls().slice(calls)
    assert.equal(verify!.body.paymentRequirements.amount, '50000')
    assert.equal(settle!.body.paymentRequirements.amount, '50000')
  })

  it('v2: verifies, forwards, then settles, and answers with the partner body and PAYMENT-RESPONSE', async () => {
    const { signature, required } = await pay()
    const calls = paymentCalls().length
    const received = partner.received.length
    const res = await call(rk.proxyUrl, PAID_PATH, paid.key, { 'payment-signature': signature })
    assert.equal(res.status, 200, res.text)
    assert.deepEqual(res.json, { mark: PARTNER_MARK, method: 'GET', url: '/reports/42?format=pdf' })
    assert.equal(header(res, 'x-partner'), 'acme')

    // the order: /verify before the partner got the request, /settle after it answered
    const made = paymentCalls().slice(calls)
    assert.deepEqual(made.map((c) => c.path), ['/verify', '/settle'])
    assert.equal(partner.received.length, received + 1)
    const at = seen.at(-1)!
    assert.equal(at.callsAtReceive, calls + 1, 'verified before forwarding')
    assert.equal(at.callsAtAnswer, calls + 1, 'not settled before the partner answered')

    // the facilitator gets the payer's payload and RelayKey's requirement
    const payload = decodePaymentSignatureHeader(signature)
    const offered = decodePaymentRequiredHeader(header(required, 'payment-required')!).accepts[0]
    for (const c of made) {
      assert.equal(c.body.x402Version, 2)
      assert.deepEqual(c.body.paymentPayload, payload)
      assert.deepEqual(c.body.paymentRequirements, offered)
    }

    const settled = decodePaymentResponseHeader(header(res, 'payment-response')!)
    assert.deepEqual(settled, { success: true, transaction: TRANSACTION, network: 'eip155:84532', payer: PAYER_ADDRESS })
    const client = new x402HTTPClient(new x402Client())
    assert.equal(client.getPaymentSettleResponse((name) => header(res, name.toLowerCase()) ?? null).transaction, TRANSACTION)
    assert.equal(header(res, 'x-payment-response'), undefined, 'X-PAYMENT-RESPONSE is for v1 payments')

    const event = await auditEventOf(rk, paid.keyId, res.requestId)
    assert.equal(event.outcome, 'forwarded')
    assert.equal(event.status, 200)
    assert.equal(event.payment_tx, TRANSACTION)
    assert.equal(event.payment_amount, '10000')
    // usage counts what was settled for the key
    const usage = await rk.admin('GET', `/admin/usage?key_id=${paid.keyId}`)
    assert.equal(usage.status, 200)
    assert.ok(usage.body.paid.requests >= 1)
    assert.ok(BigInt(usage.body.paid.amount) >= 10000n)
  })

  it('a client that leaves once its paid request reached the partner: the payment is still settled, and the event says so', async () => {
    const path = 'acme/reports/left-early'
    const { signature } = await pay(path)
    const calls = paymentCalls().length
    const received = partner.received.length
    const controller = new AbortController()
    const pending = request(`${rk.proxyUrl}/proxy/${path}`, { headers: { 'x-relaykey': paid.key, 'payment-signature': signature }, signal: controller.signal })
    await eventually('the partner has the request', async () => partner.received.length > received)
    controller.abort()
    await assert.rejects(pending)
    // the partner answers 200 after 100 ms: that answer is paid for
    await eventually('the payment is settled', async () => paymentCalls().slice(calls).some((c) => c.path === '/settle'))
    let event: any
    await eventually('the event is stored', async () => {
      const page = await rk.admin('GET', `/admin/audit?key_id=${paid.keyId}&limit=1000`)
      // (the 402 that asked for the payment has the same path)
      event = (page.body.events as any[]).find((e) => e.path === '/reports/left-early' && e.status !== 402)
      return event !== undefined
    })
    assert.equal(event.status, 499)
    assert.equal(event.outcome, 'client_closed')
    assert.equal(event.payment_tx, TRANSACTION)
    assert.equal(event.payment_amount, '10000')
  })

  it('v1: X-PAYMENT is verified and settled with v1 requirements, and answered with X-PAYMENT-RESPONSE too', async () => {
    const required = await call(rk.proxyUrl, PAID_PATH, paid.key)
    const xPayment = await payV1(v1OfferFrom(decodePaymentRequiredHeader(header(required, 'payment-required')!)))
    sentPayments.push(xPayment)
    const calls = paymentCalls().length
    const res = await call(rk.proxyUrl, PAID_PATH, paid.key, { 'x-payment': xPayment })
    assert.equal(res.status, 200, res.text)
    assert.equal(res.json.mark, PARTNER_MARK)
    const made = paymentCalls().slice(calls)
    assert.deepEqual(made.map((c) => c.path), ['/verify', '/settle'])
    assert.equal(made[0]!.body.x402Version, 1)
    assert.equal(made[0]!.body.paymentRequirements.maxAmountRequired, '10000')
    assert.equal(made[0]!.body.paymentRequirements.network, 'base-sepolia')
    assert.equal(seen.at(-1)!.callsAtReceive, calls + 1)
    assert.equal(seen.at(-1)!.callsAtAnswer, calls + 1)
    const v2 = header(res, 'payment-response')
    assert.ok(v2 !== undefined)
    assert.equal(header(res, 'x-payment-response'), v2)
    const settled = decodePaymentResponseHeader(v2)
    assert.equal(settled.success, true)
    assert.equal(settled.transaction, TRANSACTION)
    assert.equal((await auditEventOf(rk, paid.keyId, res.requestId)).payment_tx, TRANSACTION)
  })

  it('the payer sees only the settlement RelayKey made, never payment headers the partner sent', async () => {
    const { signature } = await pay('acme/spoof')
    const res = await call(rk.proxyUrl, 'acme/spoof', paid.key, { 'payment-signature': signature })
    assert.equal(res.status, 200, res.text)
    const value = res.headers['payment-response']
    assert.equal(typeof value, 'string', `one PAYMENT-RESPONSE expected, got ${JSON.stringify(value)}`)
    assert.equal(decodePaymentResponseHeader(value as string).transaction, TRANSACTION)
    assert.equal(header(res, 'x-payment-response'), undefined, 'a v2 payment gets no X-PAYMENT-RESPONSE, least of all the partner\'s')
    assert.equal(header(res, 'payment-required'), undefined)
  })

  it('an upstream answer of 400 or more passes through and nothing is settled', async () => {
    for (const status of [404, 500]) {
      const { signature } = await pay(`acme/status/${status}`)
      const calls = paymentCalls().length
      const res = await call(rk.proxyUrl, `acme/status/${status}`, paid.key, { 'payment-signature': signature })
      assert.equal(res.status, status)
      assert.deepEqual(res.json, { mark: PARTNER_MARK, refused: true })
      assert.equal(header(res, 'payment-response'), undefined)
      assert.deepEqual(paymentCalls().slice(calls).map((c) => c.path), ['/verify'], `no settle after a ${status}`)
      const event = await auditEventOf(rk, paid.keyId, res.requestId)
      assert.equal(event.status, status)
      assert.equal(event.outcome, 'forwarded')
      assert.equal(event.payment_tx, null)
      // forwarded, so the claim stays (docs/payments.md): the payer signs a new payment
      const again = await call(rk.proxyUrl, `acme/status/${status}`, paid.key, { 'payment-signature': signature })
      assert.equal(again.status, 402)
      assert.equal(again.json.error.message, 'Payment already used')
    }
  })

  it('a refused settlement is a 402 with the facilitator answer, and the partner body is withheld', async () => {
    mock.plan('/settle', { kind: 'json', status: 200, body: { success: false, errorReason: 'insufficient_funds', transaction: '', network: 'eip155:84532', payer: PAYER_ADDRESS } })
    try {
      const { signature } = await pay()
      const received = partner.received.length
      const res = await call(rk.proxyUrl, PAID_PATH, paid.key, { 'payment-signature': signature })
      assert.equal(res.status, 402)
      assert.equal(partner.received.length, received + 1, 'the partner was called')
      assert.ok(!res.text.includes(PARTNER_MARK), 'the partner body must not reach an unpaying client')
      assert.equal(header(res, 'x-partner'), undefined)
      assert.equal(res.json.error.code, 'payment_required')
      assert.equal(res.json.error.message, 'insufficient_funds')
      assert.equal(decodePaymentRequiredHeader(header(res, 'payment-required')!).error, 'insufficient_funds')
      const settled = decodePaymentResponseHeader(header(res, 'payment-response')!)
      assert.equal(settled.success, false)
      assert.equal(settled.errorReason, 'insufficient_funds')
      const event = await auditEventOf(rk, paid.keyId, res.requestId)
      assert.equal(event.outcome, 'payment_required')
      assert.equal(event.payment_tx, null)
      // a payment that failed to settle is never tried again through RelayKey
      const again = await call(rk.proxyUrl, PAID_PATH, paid.key, { 'payment-signature': signature })
      assert.equal(again.status, 402)
      assert.equal(again.json.error.message, 'Payment already used')
    } finally {
      mock.plan('/settle')
    }
  })

  it('a settle answer that is not a SettleResponse is a 502, the partner body withheld', async () => {
    mock.plan('/settle', { kind: 'text', status: 200, body: '<html>gateway</html>' })
    try {
      const { signature } = await pay()
      const res = await call(rk.proxyUrl, PAID_PATH, paid.key, { 'payment-signature': signature })
      assert.equal(res.status, 502)
      assert.equal(res.json.error.code, 'upstream_error')
      assert.ok(!res.text.includes(PARTNER_MARK))
      assert.equal(header(res, 'payment-response'), undefined)
    } finally {
      mock.plan('/settle')
    }
  })

  it('a payment the facilitator finds invalid is a 402 with its reason; the partner is never called', async () => {
    mock.plan('/verify', { kind: 'json', status: 200, body: { isValid: false, invalidReason: 'invalid_exact_evm_payload_signature' } })
    try {
      const { signature } = await pay()
      const received = partner.received.length
      const res = await call(rk.proxyUrl, PAID_PATH, paid.key, { 'payment-signature': signature })
      assert.equal(res.status, 402)
      assert.equal(res.json.error.message, 'invalid_exact_evm_payload_signature')
      assert.equal(partner.received.length, received)
    } finally {
      mock.plan('/verify')
    }
  })

  it('a facilitator that is down, redirects or answers garbage at /verify is a 502, never a free pass; the payment may be sent again', async () => {
    const cases: Array<[string, () => void, PaidKey]> = [
      ['closed port', () => {}, down],
      ['garbage', () => mock.plan('/verify', { kind: 'text', status: 200, body: 'not json' }), paid],
      ['redirect', () => mock.plan('/verify', { kind: 'redirect' }), paid],
      ['dropped connection', () => mock.plan('/verify', { kind: 'drop' }), paid],
      ['wrong shape', () => mock.plan('/verify', { kind: 'json', status: 200, body: { valid: true } }), paid],
    ]
    for (const [what, arrange, key] of cases) {
      const { signature } = await pay(PAID_PATH, key.key)
      arrange()
      const received = partner.received.length
      const res = await call(rk.proxyUrl, PAID_PATH, key.key, { 'payment-signature': signature })
      mock.plan('/verify')
      assert.equal(res.status, 502, `${what}: ${res.text}`)
      assert.equal(res.json.error.code, 'upstream_error', what)
      assert.equal(header(res, 'payment-response'), undefined, what)
      assert.equal(partner.received.length, received, `${what}: the partner must not be called`)
      const event = await auditEventOf(rk, key.keyId, res.requestId)
      assert.equal(event.outcome, 'upstream_error', what)
      assert.equal(event.payment_tx, null, what)
      if (key === paid) {
        // never forwarded, so the claim was released: the same payment goes through now
        const again = await call(rk.proxyUrl, PAID_PATH, key.key, { 'payment-signature': signature })
        assert.equal(again.status, 200, `${what}, sent again: ${again.text}`)
      }
    }
    assert.ok(!mock.calls.some((c) => c.path.includes('followed')), 'a redirect is never followed')
  })

  it('a facilitator slower than the verify timeout (5 s) is a 502; the partner is never called', async () => {
    const { signature } = await pay()
    mock.plan('/verify', { kind: 'slow', ms: 8000 })
    try {
      const received = partner.received.length
      const started = Date.now()
      const res = await call(rk.proxyUrl, PAID_PATH, paid.key, { 'payment-signature': signature })
      assert.equal(res.status, 502, res.text)
      const took = Date.now() - started
      assert.ok(took >= 4900 && took < 7900, `refused at the verify timeout, not after the facilitator answered (${took} ms)`)
      assert.equal(partner.received.length, received)
    } finally {
      mock.plan('/verify')
    }
  })

  it('a partner answer larger than RELAYKEY_PAYMENT_BUFFER_BYTES is a 502 and nothing is settled', async () => {
    for (const path of ['acme/big', 'acme/chunked-big']) {
      const { signature } = await pay(path)
      const calls = paymentCalls().length
      const received = partner.received.length
      const res = await call(rk.proxyUrl, path, paid.key, { 'payment-signature': signature })
      assert.equal(res.status, 502, `${path}: ${res.text.slice(0, 200)}`)
      assert.equal(res.json.error.code, 'upstream_error')
      assert.ok(!res.text.includes(PARTNER_MARK))
      assert.equal(partner.received.length, received + 1)
      assert.deepEqual(paymentCalls().slice(calls).map((c) => c.path), ['/verify'], `${path}: no settle`)
      assert.equal((await auditEventOf(rk, paid.keyId, res.requestId)).payment_tx, null)
    }
  })

  it('a payment is served once: sent again it is refused with "Payment already used" before any facilitator call', async () => {
    const { signature } = await pay()
    const first = await call(rk.proxyUrl, PAID_PATH, paid.key, { 'payment-signature': signature })
    assert.equal(first.status, 200, first.text)
    const calls = paymentCalls().length
    const received = partner.received.length
    const second = await call(rk.proxyUrl, PAID_PATH, paid.key, { 'payment-signature': signature })
    assert.equal(second.status, 402)
    assert.equal(second.json.error.message, 'Payment already used')
    assert.equal(decodePaymentRequiredHeader(header(second, 'payment-required')!).error, 'Payment already used')
    assert.ok(!second.text.includes(PARTNER_MARK))
    assert.equal(paymentCalls().length, calls)
    assert.equal(partner.received.length, received)
    // the same payment as v1 (same authorization, other header) is the same payment
    const p = decodePaymentSignatureHeader(signature)
    const asV1 = Buffer.from(JSON.stringify({ x402Version: 1, scheme: 'exact', network: 'base-sepolia', payload: p.payload })).toString('base64')
    sentPayments.push(asV1)
    const third = await call(rk.proxyUrl, PAID_PATH, paid.key, { 'x-payment': asV1 })
    assert.equal(third.status, 402)
    assert.equal(third.json.error.message, 'Payment already used')
  })

  it('20 concurrent copies of one payment: exactly one is served, across both workers', async () => {
    const { signature } = await pay('acme/reports/race')
    const calls = paymentCalls().length
    const received = partner.received.length
    const answers = await Promise.all(Array.from({ length: 20 }, () => call(rk.proxyUrl, 'acme/reports/race', paid.key, { 'payment-signature': signature })))
    const statuses = answers.map((a) => a.status)
    assert.equal(statuses.filter((s) => s === 200).length, 1, `statuses: ${statuses.join(',')}`)
    assert.equal(statuses.filter((s) => s === 402).length, 19, `statuses: ${statuses.join(',')}`)
    for (const a of answers.filter((x) => x.status === 402)) assert.equal(a.json.error.message, 'Payment already used')
    assert.equal(partner.received.length, received + 1)
    assert.deepEqual(paymentCalls().slice(calls).map((c) => c.path), ['/verify', '/settle'])
  })

  it('a policy without payment is unaffected: no 402, no facilitator, no payment headers', async () => {
    const calls = paymentCalls().length
    const res = await call(rk.proxyUrl, 'acme/reports/42', plain.key)
    assert.equal(res.status, 200, res.text)
    assert.equal(res.json.mark, PARTNER_MARK)
    for (const name of ['payment-required', 'payment-response', 'x-payment-response']) assert.equal(header(res, name), undefined, name)
    // a payment header sent anyway is neither used nor passed on
    const { signature } = await pay()
    const withHeader = await call(rk.proxyUrl, 'acme/reports/43', plain.key, { 'payment-signature': signature, 'x-payment': signature })
    assert.equal(withHeader.status, 200)
    assert.equal(header(withHeader, 'payment-response'), undefined)
    assert.equal(paymentCalls().length, calls)
    const event = await auditEventOf(rk, plain.keyId, res.requestId)
    assert.equal(event.outcome, 'forwarded')
    assert.equal(event.payment_tx, null)
  })

  it('payment headers never reach the partner and never appear in RelayKey\'s output', async () => {
    assert.ok(partner.received.length > 10)
    for (const r of partner.received) {
      assert.equal(r.headers['payment-signature'], undefined, r.url)
      assert.equal(r.headers['x-payment'], undefined, r.url)
      const raw = r.rawHeaders.join('\n')
      for (const value of sentPayments) assert.ok(!raw.includes(value), `${r.url}: a payment value reached the partner`)
    }
    assert.equal(await rk.stop(), 0) // everything flushed
    const output = rk.output()
    assert.ok(output.length > 0)
    assert.ok(sentPayments.length > 10)
    for (const value of sentPayments) {
      assert.ok(!output.includes(value), 'a payment header value was logged')
      const payload = JSON.parse(Buffer.from(value, 'base64').toString('utf8')).payload
      assert.ok(!output.includes(payload.signature), 'a payment signature was logged')
      assert.ok(!output.includes(payload.authorization.nonce), 'a payment nonce was logged')
    }
  })
})
