// The x402 HTTP headers: their names (lowercase, as node:http gives and takes them) and their
// encoding, base64 of JSON in every direction.
import type { SettleResponse } from './x402-types.js'

/** 402 answer: the PaymentRequired object (v2) */
export const PAYMENT_REQUIRED = 'payment-required'
/** client payment, v2 PaymentPayload */
export const PAYMENT_SIGNATURE = 'payment-signature'
/** client payment, v1 PaymentPayload */
export const X_PAYMENT = 'x-payment'
/** settle result on the paid response */
export const PAYMENT_RESPONSE = 'payment-response'
/** the same, under v1's name, when the payment came in X-PAYMENT */
export const X_PAYMENT_RESPONSE = 'x-payment-response'

// Standard alphabet with padding, as the x402 reference encodes; anything else is not a payment.
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

function encodeHeaderJson (value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64')
}

/** the decoded JSON value, or undefined when `header` is not base64 of JSON */
export function decodeHeaderJson (header: string): unknown {
  if (header.length === 0 || !BASE64.test(header)) return undefined
  try {
    return JSON.parse(Buffer.from(header, 'base64').toString('utf8'))
  } catch {
    return undefined
  }
}

/**
 * Name/value pairs, flat, for the paid response (writeHead's array form): `PAYMENT-RESPONSE`,
 * plus `X-PAYMENT-RESPONSE` when the payment came as v1. Also what a settle failure carries.
 */
export function paymentResponseHeaders (version: 1 | 2, settle: SettleResponse): string[] {
  const value = encodeHeaderJson(settle)
  return version === 1
    ? [PAYMENT_RESPONSE, value, X_PAYMENT_RESPONSE, value]
    : [PAYMENT_RESPONSE, value]
}
