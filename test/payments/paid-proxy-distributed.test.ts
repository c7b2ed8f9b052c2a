// x402 through the proxy in distributed mode (CONTRACT §7): two RelayKey nodes of two workers
// each share PostgreSQL and Redis. A policy made paid with PATCH reaches every worker of both
// nodes; a payment served on one node is refused on the other, the same payment sent to both at
// once is served exactly once, and the settlement's transaction lands in the shared audit trail.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { decodePaymentRequiredHeader, decodePaymentResponseHeader } from '@x402/core/http'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { distributedEnv, setUpGovernedPartner, startRelayKey, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { MockFacilitator, TRANSACTION } from './mock-facilitator.js'
import { auditEventOf, call, eventually, header, paymentBody, v1OfferFrom } from './paid-proxy-client.js'
import { payV1, payV2 } from './payer.js'

const PARTNER_MARK = 'partner-report-body-51c2'
const PUBLIC_URL_B = 'https://gateway.example.test/relay'

describe('x402 through the proxy (distributed mode: PostgreSQL + Redis, 2 nodes × 2 workers)', () => {
  let db: TestDatabase
  let partner: MockPartner
  let mock: MockFacilitator
  let nodeA: RelayKeyProcess
  let nodeB: RelayKeyProcess
  let setup: GovernedSetup
  const sentPayments: string[] = []

  const paymentCalls = () => mock.calls.filter((c) => c.path !== '/supported')

  async function pay (node: RelayKeyProcess, path: string): Promise<string> {
    const required = await call(node.proxyUrl, path, setup.key)
    assert.equal(required.status, 402, required.text)
    const signature = await payV2(header(required, 'payment-required')!)
    sentPayments.push(signature)
    return signature
  }

  /** every worker of both nodes answers `path` with `status` (a key context per worker) */
  async function everyWorkerAnswers (path: string, status: number): Promise<boolean> {
    const answers = await Promise.all([nodeA, nodeB, nodeA, nodeB, nodeA, nodeB, nodeA, nodeB].map((n) => call(n.proxyUrl, path, setup.key)))
    return answers.every((a) => a.status === status)
  }

  before(async () => {
    db = await createTestDatabase()
    mock = await MockFacilitator.start()
    partner = await startMockPartner()
    partner.handle((req, res) => {
      setTimeout(() => {
        const body = JSON.stringify({ mark: PARTNER_MARK, url: req.url })
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) })
        res.end(body)
      }, 50)
    })
    // a loaded test machine must not turn a slow Redis answer into a 503
    const env = distributedEnv(db.url, { extra: { RELAYKEY_LOG_LEVEL: 'debug', RELAYKEY_GOVERNANCE_TIMEOUT_MS: '2000' } })
    // node B sits behind a TLS terminator that routes /relay/* to it
    ;[nodeA, nodeB] = await Promise.all([
      startRelayKey({ env, workers: 2 }),
      startRelayKey({ env: { ...env, RELAYKEY_PUBLIC_URL: `${PUBLIC_URL_B}/` }, workers: 2 }),
    ])
    setup = await setUpGovernedPartner(nodeA, { baseUrl: partner.url })
  })

  after(async () => {
    await nodeA?.stop()
    await nodeB?.stop()
    await partner?.close()
    await mock?.close()
    await db?.drop()
  })

  it('PATCH /admin/policies with payment on node A makes every worker of both nodes ask for payment', async () => {
    // key contexts cached without payment on the workers first, so the change must invalidate them
    assert.ok(await everyWorkerAnswers('acme/warm', 200))
    const patched = await nodeA.admin('PATCH', `/admin/policies/${setup.policyId}`, { payment: paymentBody(mock.url) })
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    assert.equal(patched.body.payment.facilitator_url, mock.url)
    await eventually('every worker asks for payment', () => everyWorkerAnswers('acme/reports/1', 402))
    const res = await call(nodeB.proxyUrl, 'acme/reports/1?view=full', setup.key)
    assert.equal(res.json.error.code, 'payment_required')
    const decoded = decodePaymentRequiredHeader(header(res, 'payment-required')!)
    assert.equal(decoded.accepts[0]!.amount, '10000')
    // node B names itself by RELAYKEY_PUBLIC_URL (the trailing slash dropped), node A by the Host it was asked on
    assert.equal(decoded.resource.url, `${PUBLIC_URL_B}/proxy/acme/reports/1?view=full`)
    const fromA = await call(nodeA.proxyUrl, 'acme/reports/1', setup.key)
    assert.equal(decodePaymentRequiredHeader(header(fromA, 'payment-required')!).resource.url, `${nodeA.proxyUrl}/proxy/acme/reports/1`)
  })

  it('the first payment each worker takes is served: a fresh worker\'s replay claim does not fail for want of a Redis connection', async () => {
    // eight at once, over both nodes: every worker gets its first paid request here
    const paths = Array.from({ length: 8 }, (_, i) => `acme/reports/first-${i}`)
    const signatures = await Promise.all(paths.map((path, i) => pay(i % 2 === 0 ? nodeA : nodeB, path)))
    const answers = await Promise.all(paths.map((path, i) =>
      call((i % 2 === 0 ? nodeA : nodeB).proxyUrl, path, setup.key, { 'payment-signature': signatures[i]! })))
    const outcomes = answers.map((a) => (a.status === 200 ? 200 : `${a.status} ${a.json?.error?.code}`))
    assert.deepEqual(outcomes, paths.map(() => 200))
  })

  it('a payment served by node B is refused on node A, and its transaction is in the shared audit trail', async () => {
    const signature = await pay(nodeB, 'acme/reports/2')
    const calls = paymentCalls().length
    const served = await call(nodeB.proxyUrl, 'acme/reports/2', setup.key, { 'payment-signature': signature })
    assert.equal(served.status, 200, served.text)
    assert.equal(served.json.mark, PARTNER_MARK)
    assert.equal(decodePaymentResponseHeader(header(served, 'payment-response')!).transaction, TRANSACTION)
    assert.deepEqual(paymentCalls().slice(calls).map((c) => c.path), ['/verify', '/settle'])

    const replayed = await call(nodeA.proxyUrl, 'acme/reports/2', setup.key, { 'payment-signature': signature })
    assert.equal(replayed.status, 402)
    assert.equal(replayed.json.error.message, 'Payment already used')
    assert.equal(paymentCalls().length, calls + 2, 'a replay costs no facilitator call')

    const event = await auditEventOf(nodeA, setup.keyId, served.requestId)
    assert.equal(event.outcome, 'forwarded')
    assert.equal(event.payment_tx, TRANSACTION)
    const refused = await auditEventOf(nodeA, setup.keyId, replayed.requestId)
    assert.equal(refused.outcome, 'payment_required')
    assert.equal(refused.status, 402)
    assert.equal(refused.payment_tx, null)
  })

  it('v1 X-PAYMENT works on a node too, with X-PAYMENT-RESPONSE', async () => {
    const required = await call(nodeA.proxyUrl, 'acme/reports/3', setup.key)
    const xPayment = await payV1(v1OfferFrom(decodePaymentRequiredHeader(header(required, 'payment-required')!)))
    sentPayments.push(xPayment)
    const res = await call(nodeA.proxyUrl, 'acme/reports/3', setup.key, { 'x-payment': xPayment })
    assert.equal(res.status, 200, res.text)
    assert.equal(header(res, 'x-payment-response'), header(res, 'payment-response'))
    assert.equal(decodePaymentResponseHeader(header(res, 'x-payment-response')!).transaction, TRANSACTION)
  })

  it('the same payment sent to both nodes at once is served exactly once', async () => {
    for (let round = 0; round < 3; round++) {
      const path = `acme/reports/race-${round}`
      const signature = await pay(nodeA, path)
      const calls = paymentCalls().length
      const received = partner.received.length
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) =>
        call((i % 2 === 0 ? nodeA : nodeB).proxyUrl, path, setup.key, { 'payment-signature': signature })))
      const statuses = answers.map((a) => a.status)
      assert.equal(statuses.filter((s) => s === 200).length, 1, `round ${round}: ${statuses.join(',')}`)
      assert.equal(statuses.filter((s) => s === 402).length, 19, `round ${round}: ${statuses.join(',')}`)
      for (const a of answers) if (a.status === 402) assert.equal(a.json.error.message, 'Payment already used')
      assert.equal(partner.received.length, received + 1)
      assert.deepEqual(paymentCalls().slice(calls).map((c) => c.path), ['/verify', '/settle'])
    }
  })

  it('PATCH payment: null makes the policy free again on both nodes', async () => {
    const patched = await nodeB.admin('PATCH', `/admin/policies/${setup.policyId}`, { payment: null })
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    assert.equal(patched.body.payment, null)
    const calls = paymentCalls().length
    await eventually('every worker serves without payment', () => everyWorkerAnswers('acme/reports/4', 200))
    const res = await call(nodeA.proxyUrl, 'acme/reports/4', setup.key)
    assert.equal(res.status, 200)
    assert.equal(header(res, 'payment-required'), undefined)
    assert.equal(header(res, 'payment-response'), undefined)
    assert.equal(paymentCalls().length, calls)
  })

  it('payment headers never reach the partner and never appear in either node\'s output', async () => {
    for (const r of partner.received) {
      assert.equal(r.headers['payment-signature'], undefined, r.url)
      assert.equal(r.headers['x-payment'], undefined, r.url)
    }
    assert.equal(await nodeA.stop(), 0)
    assert.equal(await nodeB.stop(), 0)
    const output = nodeA.output() + nodeB.output()
    assert.ok(sentPayments.length >= 5)
    for (const value of sentPayments) {
      assert.ok(!output.includes(value), 'a payment header value was logged')
      const payload = JSON.parse(Buffer.from(value, 'base64').toString('utf8')).payload
      assert.ok(!output.includes(payload.signature), 'a payment signature was logged')
    }
  })
})
