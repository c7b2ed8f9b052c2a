// What a facilitator's JSON answers mean (x402 facilitator API; shapes as @x402/core's
// VerifyResponse, SettleResponse, SupportedResponse). Anything that is not clearly one of the
// expected answers is "facilitator failed": the proxy answers 502 and never serves for free.
import { isJsonObject, type JsonObject } from './json-object.js'
import type { SettleResponse, SupportedResponse, VerifyResponse } from './x402-types.js'

/** no well-formed answer (down, slow, redirect, not the expected JSON): 502 */
export type FacilitatorFailed = { readonly ok: false; readonly code: 'facilitator_failed'; readonly reason: string }

export type VerifyOutcome =
  /** the payment is good for the requirement: forward */
  | { readonly ok: true; readonly payer: string | null }
  /** the facilitator refused the payment: 402 */
  | { readonly ok: false; readonly code: 'payment_invalid'; readonly reason: string }
  | FacilitatorFailed

export type SettleOutcome =
  /** paid: `response` goes to the client in PAYMENT-RESPONSE, `response.transaction` to the audit */
  | { readonly ok: true; readonly response: SettleResponse }
  /** not paid: 402, with `response` in PAYMENT-RESPONSE so the payer sees why */
  | { readonly ok: false; readonly code: 'settle_failed'; readonly reason: string; readonly response: SettleResponse }
  /** nobody knows whether it settled: 502 */
  | FacilitatorFailed

const MAX_REASON = 200
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g

/** `status` is 2xx or 4xx (5xx, redirects and transport errors never get here) */
export function verifyOutcome (status: number, answer: unknown): VerifyOutcome {
  if (!isJsonObject(answer) || typeof answer.isValid !== 'boolean') return failed('verify answer is not a VerifyResponse')
  const a = answer as VerifyResponse
  if (!a.isValid) return { ok: false, code: 'payment_invalid', reason: reason(a.invalidReason, 'payment verification failed') }
  if (status >= 300) return failed(`verify answered ${status} with isValid true`)
  return { ok: true, payer: typeof a.payer === 'string' ? a.payer : null }
}

/** `network`: the requirement's, for a failure answer that names none */
export function settleOutcome (status: number, answer: unknown, network: string): SettleOutcome {
  if (!isJsonObject(answer) || typeof answer.success !== 'boolean') return failed('settle answer is not a SettleResponse')
  if (answer.success) {
    if (status >= 300) return failed(`settle answered ${status} with success true`)
    if (typeof answer.transaction !== 'string' || typeof answer.network !== 'string') {
      return failed('settle answer has no transaction or network')
    }
  }
  const response = buyerFacing(answer, network)
  if (response.success) return { ok: true, response }
  return { ok: false, code: 'settle_failed', reason: reason(response.errorReason, 'settlement failed'), response }
}

/** does a `/supported` answer list the v2 kind the settings offer? undefined: not a SupportedResponse */
export function supportsKind (answer: unknown, scheme: string, network: string): boolean | undefined {
  if (!isJsonObject(answer) || !Array.isArray(answer.kinds)) return undefined
  for (const kind of (answer as SupportedResponse).kinds) {
    if (!isJsonObject(kind) || kind.x402Version !== 2 || kind.scheme !== scheme || typeof kind.network !== 'string') continue
    // facilitators may list a family: eip155:*
    if (kind.network === network || (kind.network.endsWith(':*') && network.startsWith(kind.network.slice(0, -1)))) return true
  }
  return false
}

/**
 * The settle answer reduced to SettleResponse's own fields, as the x402 reference does before
 * answering the payer (it drops `extensionResponses`, which are for the server).
 */
function buyerFacing (a: JsonObject, network: string): SettleResponse {
  const response: SettleResponse = {
    success: a.success === true,
    transaction: typeof a.transaction === 'string' ? a.transaction : '',
    network: (typeof a.network === 'string' ? a.network : network) as SettleResponse['network'],
  }
  if (typeof a.payer === 'string') response.payer = a.payer
  if (typeof a.amount === 'string') response.amount = a.amount
  if (typeof a.errorReason === 'string') response.errorReason = a.errorReason
  if (typeof a.errorMessage === 'string') response.errorMessage = a.errorMessage
  return response
}

export function failed (why: string): FacilitatorFailed {
  return { ok: false, code: 'facilitator_failed', reason: `payment facilitator failed: ${why}` }
}

/** the facilitator's reason, fit for a 402 message: bounded and without control characters */
function reason (value: unknown, fallback: string): string {
  if (typeof value !== 'string' || value === '') return fallback
  const clean = value.replace(CONTROL, ' ')
  return clean.length > MAX_REASON ? clean.slice(0, MAX_REASON) : clean
}
