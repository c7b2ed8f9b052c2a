// The x402 steps of a paid request, around the PaidExchange that holds its payment: the
// payment checked (claimed and verified) before the first attempt, 402 answers, and the
// partner's answer released once the payment settled.
import { closeIfDraining } from './respond.js'
import { PAYMENT_REQUIRED, paymentResponseHeaders } from '../payments/x402-headers.js'
import type { SettleOutcome } from '../payments/facilitator-answers.js'
import type { PaymentRefusal } from './paid-exchange.js'
import { answerJson, governanceFailed, refund, refuse, report } from './exchange-answers.js'
import { send } from './exchange-client-flow.js'
import { Finish, type ExchangeState } from './exchange-state.js'

export function paymentChecked (x: ExchangeState, refusal: PaymentRefusal | null): void {
  if (refusal === null) return send(x)
  refund(x)
  switch (refusal.code) {
    case 'payment_required': return paymentRequired(x, refusal.reason)
    case 'governance_unavailable': return governanceFailed(x, refusal.err)
    case 'upstream_error':
      x.deps.logger.warn({ request_id: x.requestId, reason: refusal.reason }, 'payment not verified: facilitator failed')
      return refuse(x, 'upstream_error', 'the payment facilitator did not answer usably; nothing was charged')
  }
}

/** 402 with the PAYMENT-REQUIRED header and the same object as the body (docs/payments.md) */
export function paymentRequired (x: ExchangeState, reason: string, extraHeaders?: string[]): void {
  const answer = x.paid!.required(reason, x.requestId)
  const headers = [PAYMENT_REQUIRED, answer.header]
  if (extraHeaders !== undefined) headers.push(...extraHeaders)
  const facts = x.facts
  facts.status = 402
  facts.outcome = 'payment_required'
  facts.bytesOut = Buffer.byteLength(answer.body)
  answerJson(x, 402, answer.body, headers)
  report(x)
}

/** a paid answer bigger than RELAYKEY_PAYMENT_BUFFER_BYTES cannot be held: 502, no settle */
export function paidAnswerTooLarge (x: ExchangeState): void {
  x.settled = true
  x.paid!.drop()
  x.abort?.()
  refund(x)
  refuse(x, 'upstream_error', 'the partner\'s answer is larger than a paid answer may be (RELAYKEY_PAYMENT_BUFFER_BYTES); nothing was charged')
}

/** the partner answered below 400 and the payment settled (or not): now the client hears */
export function settlementDone (x: ExchangeState, outcome: SettleOutcome): void {
  const paid = x.paid!
  const held = paid.held!
  const facts = x.facts
  const res = x.res
  if (!outcome.ok) {
    refund(x)
    if (outcome.code === 'settle_failed') return paymentRequired(x, outcome.reason, paymentResponseHeaders(paid.version, outcome.response))
    x.deps.logger.error({ request_id: x.requestId, reason: outcome.reason }, 'payment settlement unknown: facilitator failed; reconcile with the facilitator')
    return refuse(x, 'upstream_error', 'the payment could not be settled; the answer is withheld')
  }
  facts.paymentTx = outcome.response.transaction
  facts.paymentAmount = paid.amount
  if (res.destroyed || x.socket.destroyed) {
    x.deps.logger.warn({ request_id: x.requestId, payment_tx: facts.paymentTx }, 'client left before its paid answer was sent')
    facts.status = 499
    facts.outcome = 'client_closed'
    return report(x)
  }
  const headers = held.headers
  headers.push(...paymentResponseHeaders(paid.version, outcome.response))
  const body = paid.body()
  facts.bytesOut = body.length
  closeIfDraining(res, x.socket)
  if (held.statusText !== '') res.writeHead(held.status, held.statusText, headers)
  else res.writeHead(held.status, headers)
  x.heldChunk = body
  x.finish = Finish.End
  facts.outcome = 'forwarded'
  report(x)
}
