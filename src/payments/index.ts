// x402 payments (docs/payments.md): what the proxy calls, in the order it calls it. Nothing here
// touches a request or a response; the proxy reads headers, writes answers and decides status
// codes from the values returned. See docs/payments.md for the operator's view.
//
// Once per process (worker):
//   facilitators = new FacilitatorClient({ logger })                       close() at shutdown
//   replayGuard  = openReplayGuard(config, redis)   (process/open-replay-guard.ts: Redis in distributed mode, the embedded SQLite file otherwise)
//
// Once per key context (policy), only when `policy.payment !== null`:
//   payment = compilePayment(policy.payment)
//   facilitators.checkSupported(payment)      optional, not awaited; logs a warning, never throws
//
// Per request, only when the key context has a payment (a policy without one costs nothing):
//   1. price = priceFor(payment, method, path)
//        null → this endpoint is free: go on as without payment
//   2. read = readPayment(payment, price, headers['payment-signature'], headers['x-payment'], resourceUrl)
//        !read.ok → 402 payment_required: paymentRequired(payment, price, resourceUrl, read.reason, requestId)
//                   gives the PAYMENT-REQUIRED header value and the JSON body
//   3. claimed = await replayGuard.claim(read.payment.replayKey, read.payment.claimTtlMs)
//        false → 402 as in 2 with PAYMENT_REPLAYED_REASON
//        throws GovernanceUnavailableError → 503 governance_unavailable (never accept unclaimed)
//   4. verified = await facilitators.verify(read.payment)
//        !ok → replayGuard.release(key), then
//              'payment_invalid'    → 402 as in 2 with verified.reason
//              'facilitator_failed' → 502 (never a free pass)
//   5. forward (header-rules already strip the payment headers). Refused before forwarding for
//      any other reason (limits, budget, breaker…)? replayGuard.release(key).
//   6. upstream status < 400, before any response byte goes out:
//        settled = await facilitators.settle(read.payment)
//        ok                  → add paymentResponseHeaders(read.payment.version, settled.response)
//                              to the response; audit payment_tx = settled.response.transaction
//        'settle_failed'     → 402 as in 2 with settled.reason, plus
//                              paymentResponseHeaders(read.payment.version, settled.response);
//                              the upstream body is discarded
//        'facilitator_failed'→ 502
//      upstream status >= 400, or no upstream answer: no settle, the answer passes as usual.
//      After forwarding the claim is never released (replay-guard.ts says why).
//
// `resourceUrl` is the URL the client requested (its scheme, Host, path and query).
// Payment headers and payloads must never be logged; nothing in this module logs them.
export { compilePayment, priceFor, type CompiledPayment, type Price } from './compile-payment.js'
export type { FacilitatorFailed, SettleOutcome, VerifyOutcome } from './facilitator-answers.js'
export { FacilitatorClient, type FacilitatorClientOptions, type SupportedCheck } from './facilitator-client.js'
export { PAYMENT_REQUIRED_REASON, paymentRequired, type PaymentRequiredAnswer } from './payment-required.js'
export { validatePaymentSettings, type PaymentSettings, type PriceRule } from './payment-settings.js'
export { readPayment, type AcceptedPayment, type ReadPaymentResult } from './read-payment.js'
export { PAYMENT_REPLAYED_REASON, type PaymentReplayGuard } from './replay-guard.js'
export {
  PAYMENT_REQUIRED, PAYMENT_RESPONSE, PAYMENT_SIGNATURE, X_PAYMENT, X_PAYMENT_RESPONSE, paymentResponseHeaders,
} from './x402-headers.js'
