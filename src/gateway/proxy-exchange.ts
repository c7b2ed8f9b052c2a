// One proxied request from arrival to the last response byte, in the order of its steps:
//
//   start            the request's headers read once (key, Host, body framing, payment headers)
//   authorization    key → policy and binding → endpoint and environment rules  (exchange-authorization.ts)
//   admission        rate limits, budgets, vendor quotas: leases or one store decision  (exchange-admission.ts)
//   payment          x402: claimed and verified before any attempt  (exchange-payment.ts)
//   client flow      how the body travels; backpressure, pipelining, a client that leaves  (exchange-client-flow.ts)
//   attempts         credential and secret on the request, dispatch, the answer  (exchange-attempts.ts)
//   retries          retry, fail over, breakers, the deadline  (exchange-retries.ts)
//   answers          refusals, refunds, the audit report, the answer's end  (exchange-answers.ts)
//
// HOT PATH. The exchange is the undici dispatch handler itself (legacy raw-header API, which
// undici's core calls without an adapter); the steps are module functions that take the
// exchange (its state: exchange-state.ts), and listeners and timers are module-level functions
// that find it on the response, request or socket, so a request allocates this object and its
// header arrays but no closures. Only the steps that wait on a store go through a promise: a
// key-cache miss, an unknown partner, and the limits decision when the key has limits.
//
// Reliability (docs/reliability.md): the partner environment's and the credential's circuit
// breakers are checked before any limit is spent; the partner's concurrency gate is held from
// the first dispatch to the last byte; an attempt that fails on the connection, or answers a
// status the partner's `retry.on_status` lists, is sent again after a full-jitter backoff when
// the request is replayable (idempotent or carrying Idempotency-Key, body absent or buffered),
// the retry budget allows it and `timeouts.request_ms` (counted over all attempts) leaves time.
// A retried attempt's response is drained, never shown to the client.
import type { Dispatcher } from 'undici'
import type { LimitState, Admission } from '../limits/admission.js'
import type { SettleOutcome } from '../payments/facilitator-answers.js'
import { PAYMENT_SIGNATURE, X_PAYMENT } from '../payments/x402-headers.js'
import { boundedPartner, boundedPath } from '../audit/bounded-fields.js'
import { checkProxyPath } from './proxy-path.js'
import { isTraceMethod, PROXY_METHODS, traceRefusal } from './trace-methods.js'
import { auditLogged, governanceFailed, refuse } from './exchange-answers.js'
import { authorize } from './exchange-authorization.js'
import { limitRefused } from './exchange-admission.js'
import { paidAnswerTooLarge, settlementDone } from './exchange-payment.js'
import { attemptBodySent, attemptComplete, attemptConnected, attemptData, attemptFailed, attemptHeaders, attemptUpgraded, startAttempt } from './exchange-attempts.js'
import { ExchangeState } from './exchange-state.js'

export class ProxyExchange extends ExchangeState implements Dispatcher.DispatchHandler {
  /** `rest` is the raw path after `/proxy/{partner}/`; `query` excludes the '?' */
  start (partnerSlug: string, rest: string, query: string): void {
    this.partnerSlug = partnerSlug
    this.query = query
    // the client's own text, bounded before it reaches its audit event and the access log
    this.facts.requestedPartner = boundedPartner(partnerSlug)
    this.facts.path = boundedPath('/' + rest)
    // checked now, refused once the key is known, so a probing key shows up in its own audit trail
    this.path = checkProxyPath(rest)

    const raw = this.req.rawHeaders
    let key: string | undefined
    let hosts = 0
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!
      switch (name.length) {
        case 4:
          if (name.toLowerCase() === 'host') {
            hosts++
            this.host = raw[i + 1]!
          }
          break
        case 6:
          if (name.toLowerCase() === 'expect' && raw[i + 1]!.toLowerCase() === '100-continue') this.expectsContinue = true
          break
        case 9:
          if (name.toLowerCase() === X_PAYMENT) this.xPayment = raw[i + 1]
          break
        case 10:
          if (name.toLowerCase() === 'x-relaykey') key = raw[i + 1]
          break
        case 14:
          if (name.toLowerCase() === 'content-length') {
            this.contentLength = Number(raw[i + 1])
            if (this.contentLength !== 0) this.hasBody = true
          }
          break
        case 15:
          if (name.toLowerCase() === 'idempotency-key') this.idempotencyKey = true
          break
        case 17: {
          const lower = name.toLowerCase()
          if (lower === 'transfer-encoding') {
            this.hasBody = true
            this.contentLength = -1
          } else if (lower === PAYMENT_SIGNATURE) {
            this.paymentSignature = raw[i + 1]
          }
          break
        }
      }
    }
    if (hosts > 1) return refuse(this, 'bad_request', 'more than one Host header')
    // RFC 9112 §3.2 (node:http is told not to answer this itself, which it does without JSON or a request id)
    if (hosts === 0 && this.req.httpVersionMinor === 1) return refuse(this, 'bad_request', 'an HTTP/1.1 request needs a Host header')
    if (isTraceMethod(this.req.method!)) return refuse(this, 'method_not_allowed', traceRefusal(this.req.method!), ['allow', PROXY_METHODS])
    if (key === undefined || key === '') return refuse(this, 'missing_key', 'send your virtual key in the X-RelayKey header')

    const digest = this.deps.keys.digestOf(key)
    if (digest === null) return refuse(this, 'invalid_key', 'the virtual key is malformed or its checksum is wrong')
    const context = this.deps.keys.cached(digest)
    if (context !== undefined) return authorize(this, context)
    this.deps.keys.load(digest).then(
      (loaded) => authorize(this, loaded),
      (err: unknown) => governanceFailed(this, err),
    )
  }

  // undici dispatch handler (legacy API: raw Buffer headers, boolean backpressure)

  onConnect (abort: (err?: Error) => void): void {
    attemptConnected(this, abort)
  }

  /** undici 7 passes the chunk itself, though its types say a size: accept both */
  onBodySent (chunk: Buffer | string | number): void {
    attemptBodySent(this, chunk)
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    return attemptHeaders(this, statusCode, rawHeaders, resume, statusText)
  }

  onData (chunk: Buffer): boolean {
    return attemptData(this, chunk)
  }

  onComplete (): void {
    attemptComplete(this)
  }

  onError (err: Error): void {
    attemptFailed(this, err)
  }

  onUpgrade (): void {
    attemptUpgraded(this)
  }

  /** the audit event is in the local log (ExchangeReporter): the client may have the end of its answer now */
  auditLogged (): void {
    auditLogged(this)
  }

  // the steps that hand the request on to a later one (see ExchangeState)

  attemptNow (): void {
    startAttempt(this)
  }

  paidAnswerTooLarge (): void {
    paidAnswerTooLarge(this)
  }

  settlementDone (outcome: SettleOutcome): void {
    settlementDone(this, outcome)
  }

  limitRefused (refusal: Extract<Admission, { ok: false }>, state: LimitState | null): void {
    limitRefused(this, refusal, state)
  }
}
