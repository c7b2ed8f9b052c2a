// The 402 answer (docs/payments.md): a v2 PaymentRequired object offering this request's price, as
// the base64 `PAYMENT-REQUIRED` header and as the JSON body, where `error` is the contract's
// error object ({code: "payment_required", message, request_id}) instead of x402's reason
// string; the message is that same reason.
//
//   header: {"x402Version":2,"error":"<reason>","resource":{…},"accepts":[…]}
//   body:   {"x402Version":2,"error":{"code":"payment_required","message":"<reason>","request_id":"…"},"resource":{…},"accepts":[…]}
import type { CompiledPayment, Price } from './compile-payment.js'

/** The x402 reference server's reason when no payment was sent. */
export const PAYMENT_REQUIRED_REASON = 'Payment required'

export interface PaymentRequiredAnswer {
  /** value of the `PAYMENT-REQUIRED` header */
  readonly header: string
  /** the JSON body; send with status 402 and content-type application/json */
  readonly body: string
}

/**
 * `resourceUrl` is the URL the client asked for (scheme, host, path and query as it sent them);
 * `reason` says why it was not served, e.g. PAYMENT_REQUIRED_REASON or a ReadPaymentResult's.
 * Only the url, the reason and the request id are serialized here; the rest was at compile time.
 */
export function paymentRequired (payment: CompiledPayment, price: Price, resourceUrl: string, reason: string, requestId: string): PaymentRequiredAnswer {
  const tail = `,"resource":{"url":${JSON.stringify(resourceUrl)}${payment.resourceTailJson}},"accepts":${price.acceptsJson}}`
  const reasonJson = JSON.stringify(reason)
  return {
    header: Buffer.from(`{"x402Version":2,"error":${reasonJson}${tail}`).toString('base64'),
    body: `{"x402Version":2,"error":{"code":"payment_required","message":${reasonJson},"request_id":${JSON.stringify(requestId)}}${tail}`,
  }
}
