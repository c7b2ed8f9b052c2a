// What the paid-proxy end-to-end tests share: a paid policy made through the admin API, a
// client that calls the proxy and keeps every answer's headers and body, the v1 offer a v1
// payer would have been given, and a wait for a request's (batched) audit event.
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import type { PaymentRequiredV1 } from '@x402/core/types/v1'
import { request } from 'undici'
import type { RelayKeyProcess } from '../helpers/relaykey-process.js'
import { ASSET, PAY_TO } from './payment-fixtures.js'

export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: any
  requestId: string
}

/** One request through the proxy; `headers` are sent as given (payment headers included). */
export async function call (proxyUrl: string, path: string, key: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const res = await request(`${proxyUrl}/proxy/${path}`, {
    method: method as 'GET',
    headers: { 'x-relaykey': key, ...headers },
  })
  const text = await res.body.text()
  let json: any = null
  try {
    json = JSON.parse(text)
  } catch {}
  return { status: res.statusCode, headers: res.headers, text, json, requestId: String(res.headers['x-relaykey-request-id']) }
}

export function header (answer: Answer, name: string): string | undefined {
  const value = answer.headers[name]
  return Array.isArray(value) ? value.join(', ') : value
}

/** the `payment` field of a policy, as an operator would send it */
export function paymentBody (facilitatorUrl: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    amount: '10000',
    asset: ASSET,
    network: 'eip155:84532',
    pay_to: PAY_TO,
    facilitator_url: facilitatorUrl,
    description: 'Acme reports',
    extra: { name: 'USDC', version: '2' },
    ...fields,
  }
}

export interface PaidKey {
  policyId: string
  keyId: string
  key: string
}

/** POST /admin/policies with `payment`, a binding to `partner`, and a key of that policy */
export async function createPaidKey (rk: RelayKeyProcess, partner: string, payment: Record<string, unknown>, environment = 'production'): Promise<PaidKey> {
  const must = async (path: string, body: unknown): Promise<any> => {
    const res = await rk.admin('POST', path, body)
    assert.equal(res.status, 201, `POST ${path} → ${res.status} ${JSON.stringify(res.body)}`)
    return res.body
  }
  const policy = await must('/admin/policies', { name: `paid-${Math.random().toString(36).slice(2, 10)}`, payment })
  assert.equal(policy.payment.amount, payment.amount)
  await must('/admin/bindings', { policy: policy.id, partner })
  const key = await must('/admin/keys', { name: 'paying key', policy: policy.id, environment })
  return { policyId: policy.id, keyId: key.id, key: key.key }
}

/**
 * The v1 offer a v1 server would have made for this 402 (RelayKey's 402 is v2 only): the same
 * requirement with v1's field names and network name.
 */
export function v1OfferFrom (required: any): PaymentRequiredV1 {
  const r = required.accepts[0]
  return {
    x402Version: 1,
    error: '',
    accepts: [{
      scheme: r.scheme,
      network: 'base-sepolia' as PaymentRequiredV1['accepts'][0]['network'],
      maxAmountRequired: r.amount,
      resource: required.resource.url,
      description: required.resource.description,
      mimeType: '',
      outputSchema: {},
      payTo: r.payTo,
      maxTimeoutSeconds: r.maxTimeoutSeconds,
      asset: r.asset,
      extra: r.extra,
    }],
  } as PaymentRequiredV1
}

/** the key's audit event for `requestId`, once the batched pipeline has written it */
export async function auditEventOf (rk: RelayKeyProcess, keyId: string, requestId: string, timeoutMs = 10_000): Promise<any> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const res = await rk.admin('GET', `/admin/audit?key_id=${keyId}&limit=1000`)
    assert.equal(res.status, 200, JSON.stringify(res.body))
    const event = (res.body.events as any[]).find((e) => e.request_id === requestId)
    if (event !== undefined) return event
    if (Date.now() > deadline) assert.fail(`no audit event for request ${requestId} within ${timeoutMs} ms`)
    await sleep(100)
  }
}

/** polls until `check` passes (a policy change reaching every worker, say) */
export async function eventually (what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`)
    await sleep(50)
  }
}
