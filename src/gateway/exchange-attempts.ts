// One attempt at the partner: the breakers' probe slots and the partner's concurrency gate,
// the request head (credential, signer, query auth), the dispatch through the partner's undici
// Pool, and what comes back: headers (retry, fail over or answer), body (streamed with
// backpressure, drained for a retry, or held for a payment), its end, or an error.
import type { Dispatcher } from 'undici'
import { errorSummary, type ErrorCode } from '../errors.js'
import { tlsFailureReason } from '../partner-auth/tls-failure.js'
import { pushRateLimitHeaders } from '../limits/rate-limit-headers.js'
import type { CredentialRoute } from './key-context.js'
import { withoutQueryParam } from './proxy-path.js'
import { connectionTokens, copyRequestHeaders, responseHeaders } from './header-rules.js'
import { closeIfDraining } from './respond.js'
import { failBeforeResponse, refund, report } from './exchange-answers.js'
import { clientLeftDuringAttempt, onResponseDrain, stalled } from './exchange-client-flow.js'
import { armDeadline, DeadlineExceededError, judgeAttempt, mayRefreshToken, mayRetry, otherCredential, retryCredential, backoff, retryDelay, scheduleRetry } from './exchange-retries.js'
import { clearDeadline, Finish, giveBackSignedBody, PROBE_CREDENTIAL, PROBE_PARTNER, releaseProbes, type ExchangeState } from './exchange-state.js'

/** one attempt: take the breakers' probe slots if due, then dispatch (`x` is the undici handler: ProxyExchange) */
export function startAttempt (x: ExchangeState & Dispatcher.DispatchHandler): void {
  const upstream = x.upstream!
  const credential = x.credential!
  // request_ms starts with the first attempt (a wait for its access token included), once a
  // buffered body has been read
  if (x.deadline === 0) x.deadline = performance.now() + upstream.requestTimeoutMs
  else if (performance.now() >= x.deadline) return failBeforeResponse(x, 'upstream_timeout', 'the partner did not answer in time')
  const signer = credential.signer
  if (signer !== null) {
    // an access token to fetch first (OAuth2): the attempt starts once it is there, or the
    // request ends at its deadline
    const waiting = signer.ready(Date.now())
    if (waiting !== null) {
      x.waitingForSigner = true
      armDeadline(x)
      waiting.then(() => signerReady(x), (err: unknown) => signerFailed(x, err))
      return
    }
  }
  const facts = x.facts
  if (!x.inGate) {
    if (!upstream.guards.gate.tryEnter()) return failBeforeResponse(x, 'circuit_open', `partner ${x.partnerSlug} has too many requests in flight`, 1000)
    x.inGate = true
  }
  const now = Date.now()
  const partnerEntry = upstream.breaker.enter(now)
  if (partnerEntry === 'refused') {
    return failBeforeResponse(x, 'circuit_open', `partner ${facts.partner} is failing; RelayKey stopped sending to it for a while`, upstream.breaker.retryAfterMs(now))
  }
  const credentialEntry = credential.breaker.enter(now)
  if (credentialEntry === 'refused') {
    if (partnerEntry === 'probe') upstream.breaker.releaseProbe()
    return failBeforeResponse(x, 'circuit_open', `every credential of partner ${facts.partner} is failing`, credential.breaker.retryAfterMs(now))
  }
  x.probes = (partnerEntry === 'probe' ? PROBE_PARTNER : 0) | (credentialEntry === 'probe' ? PROBE_CREDENTIAL : 0)
  x.answered = false
  x.attempt++
  facts.attempts = x.attempt
  facts.credentialId = credential.id
  facts.dispatched = performance.now()

  const req = x.req
  const raw = req.rawHeaders
  const headers: string[] = []
  copyRequestHeaders(raw, upstream.credentialHeader, connectionTokens(raw), headers, upstream.signerHeaders)
  headers.push('x-relaykey-request-id', x.requestId)
  if (credential.headerName !== null) headers.push(credential.headerName, credential.headerValue)
  let query = x.query
  if (credential.queryPair !== null) {
    query = withoutQueryParam(query, upstream.credentialQueryParam!)
    query = query === '' ? credential.queryPair : query + '&' + credential.queryPair
  }
  const path = upstream.basePath + '/' + x.path!.raw + (query === '' ? '' : '?' + query)
  if (signer !== null) {
    // signed afresh on every attempt: a retry gets a new timestamp, nonce and signature
    const body = x.body
    signer.sign(req.method!, path, body === null || body === req ? null : body as Buffer, headers, Date.now())
    x.signedHeaders = headers
  }
  const remaining = Math.max(1, Math.ceil(x.deadline - facts.dispatched))
  if (x.attempt > 1) armDeadline(x)
  ;(credential.pool ?? upstream.pool).dispatch({
    method: req.method as Dispatcher.HttpMethod,
    path,
    headers,
    body: x.body,
    // the first attempt: request_ms, to undici's precision; later ones: RelayKey's own timer
    // ends them, and undici's (one tick later) can never fire first
    headersTimeout: x.attempt === 1 ? remaining : remaining + 1000,
    // between body chunks: a stream that keeps sending (SSE) is never cut
    bodyTimeout: upstream.requestTimeoutMs,
  }, x)
}

export function attemptConnected (x: ExchangeState, abort: (err?: Error) => void): void {
  x.abort = abort
  if (x.res.destroyed) abort()
  else if (x.deadlinePassed) abort(new DeadlineExceededError())
  // undici writes the request head right after this returns, unless it was aborted here
  else x.reached = true
}

/** undici 7 passes the chunk itself, though its types say a size: accept both */
export function attemptBodySent (x: ExchangeState, chunk: Buffer | string | number): void {
  // a buffered body was counted once when it was read; a streamed one is counted as it goes
  if (x.body !== x.req) return
  x.facts.bytesIn += typeof chunk === 'number' ? chunk : chunk.length
}

export function attemptHeaders (x: ExchangeState, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
  if (statusCode < 200) return true // 1xx: the final answer is still to come
  x.resume = resume
  x.answered = true
  const facts = x.facts
  const upstream = x.upstream!
  facts.status = statusCode
  facts.upstreamLatencyMs = performance.now() - facts.dispatched
  x.deps.metrics.upstreamResponded(facts.partner, statusCode, facts.upstreamLatencyMs / 1000)
  const now = Date.now()
  // a 401 to an attempt that carried an access token: that token is dropped, and the request
  // goes once more with a fresh one when it can; when it cannot, the 401 goes to the client,
  // and no breaker holds a stale token against the credential
  let staleToken = false
  if (statusCode === 401 && x.signedHeaders !== null && x.credential!.signer?.refused(x.signedHeaders) === true && !x.tokenRefreshed) {
    if (mayRefreshToken(x)) return true
    staleToken = true
  }
  // The vendor refusing the credential: this request fails over to another credential when
  // there is one. The credential's breaker hears of it only once a second key sees the same
  // (CircuitBreaker.rejected): 401 then takes it out of rotation, 403 (which may only mean
  // "not this resource") counts as a failure. 502–504 say the partner is unwell; a 500 may be
  // this one request's doing and says nothing about the partner's health.
  const other = (statusCode === 401 && !staleToken) || statusCode === 403 ? otherCredential(x, now) : null
  const refused = other !== null
  judgeAttempt(x, statusCode >= 502 && statusCode <= 504 ? 'failed' : !refused ? 'succeeded' : statusCode === 401 ? 'rejected' : 'forbidden', now)
  // a 5xx is the partner saying it did not do the work: this attempt charges nothing
  if (statusCode >= 500) x.reached = false
  if ((refused || upstream.retry.onStatus.includes(statusCode)) && mayRetry(x)) {
    const next = refused ? other : retryCredential(x, now)
    const delay = refused ? 0 : retryDelay(x, rawHeaders, now)
    // a breaker this answer just opened leaves the answer as it is: no retry into a 503
    if (next !== null && delay >= 0 && upstream.guards.budget.tryRetry(now)) {
      x.credential = next
      x.discarding = true
      x.drained = 0
      armDeadline(x) // the drain counts against request_ms too
      x.retryDelayMs = delay
      x.retryReason = refused ? 'credential_rejected' : 'status'
      return true
    }
  }
  clearDeadline(x)
  // no attempt follows: a body held to be signed is not needed while the answer streams
  giveBackSignedBody(x)
  if (statusCode >= 500) refund(x)
  // a paid answer below 400 goes on to be settled though its client left; any other has nobody to go to
  if (x.res.destroyed && (x.paid === null || statusCode >= 400)) {
    clientLeftDuringAttempt(x)
    return true
  }
  const res = x.res
  const headers = responseHeaders(rawHeaders, x.requestId, upstream.credentialQueryParam, secretFormsOf(x, x.credential!))
  pushRateLimitHeaders(headers, x.context!.limits.policyHeader, x.limitState)
  if (x.paid !== null && statusCode < 400) {
    // served, so to be paid for: held until the payment settles
    if (!x.paid.hold(statusCode, reasonPhrase(statusText), headers, contentLengthOf(rawHeaders))) x.paidAnswerTooLarge()
    return true
  }
  x.answerLength = contentLengthOf(rawHeaders)
  const reason = reasonPhrase(statusText)
  closeIfDraining(res, x.socket)
  if (reason !== '') res.writeHead(statusCode, reason, headers)
  else res.writeHead(statusCode, headers)
  return true
}

export function attemptData (x: ExchangeState, chunk: Buffer): boolean {
  if (x.discarding) {
    // a retry follows: drain a small answer to keep the connection, drop a large one
    x.drained += chunk.length
    if (x.drained > MAX_DRAIN_BYTES) x.abort?.(new DrainTooLongError())
    return true
  }
  if (x.paid?.held != null) {
    if (!x.paid.add(chunk)) x.paidAnswerTooLarge()
    return true
  }
  const facts = x.facts
  facts.bytesOut += chunk.length
  if (x.answerLength >= 0 && facts.bytesOut >= x.answerLength) {
    // the answer's last bytes: with a Content-Length they complete it for the client, so they
    // wait until its audit event is in the log (auditLogged)
    x.heldChunk = chunk
    return true
  }
  const res = x.res
  if (res.write(chunk)) return true
  res.once('drain', onResponseDrain)
  x.stallTimer = setTimeout(stalled, x.deps.clientStallMs, x)
  return false
}

export function attemptComplete (x: ExchangeState): void {
  if (x.discarding) return scheduleRetry(x)
  if (x.settled) return // a held answer cut off for its size
  x.settled = true
  if (x.paid?.held != null) {
    x.paid.settle().then(
      (outcome) => x.settlementDone(outcome),
      (err: unknown) => x.settlementDone({ ok: false, code: 'facilitator_failed', reason: errorSummary(err).type }),
    )
    return
  }
  x.finish = Finish.End
  x.facts.outcome = 'forwarded'
  report(x)
}

export function attemptFailed (x: ExchangeState, err: Error): void {
  if (x.settled) return
  // the drained answer of a retried attempt broke off: the retry goes ahead all the same
  if (x.discarding) return scheduleRetry(x)
  x.paid?.drop() // a held answer that broke off is no answer: nothing to settle
  const res = x.res
  if (res.destroyed) {
    // the client left (possibly before the dispatch, while limits were decided); undici is
    // telling us it stopped too. The request still gets its audit event.
    x.settled = true
    releaseProbes(x)
    if (!res.headersSent) {
      if (!x.reached) refund(x)
      x.facts.status = 499
      x.facts.outcome = 'client_closed'
    } else {
      x.facts.outcome = 'forwarded'
    }
    report(x)
    return
  }
  if (res.headersSent) {
    // mid-body: the only honest signal left is a broken response
    x.settled = true
    x.deps.logger.warn({ request_id: x.requestId, err: errorSummary(err) }, 'upstream failed mid-response')
    // (queued behind another answer, it goes once it gets the connection: the earlier answer
    // finishes first)
    res.destroy()
    // truncated: a failure of the partner's, not a success. The breaker counts it (the
    // credential did nothing wrong), the request is refunded as a 5xx is, and the event keeps
    // the status the client got with outcome upstream_error
    x.partnerSucceeding = false
    x.upstream!.breaker.failed(Date.now())
    refund(x)
    x.facts.outcome = 'upstream_error'
    report(x)
    return
  }
  const now = Date.now()
  if ((err as { code?: string }).code === 'RELAYKEY_EGRESS_REFUSED') {
    // RelayKey's own policy, not the partner failing (no breaker counts it): no retry, the
    // operator is told why
    releaseProbes(x)
    x.deps.logger.error({ request_id: x.requestId, partner: x.partnerSlug, reason: err.message }, 'partner address refused by the egress policy (RELAYKEY_EGRESS_ALLOW)')
    return failBeforeResponse(x, 'upstream_error', 'RelayKey\'s egress policy does not allow connecting to this partner\'s address')
  }
  const tls = tlsFailureReason(err)
  if (tls !== null) {
    // the partner's certificate or the handshake: the same on every attempt, so none follows
    x.deps.logger.error({ request_id: x.requestId, partner: x.partnerSlug, tls_reason: tls, err: errorSummary(err) }, `TLS connection to the partner failed: ${tls.replaceAll('_', ' ')}`)
    x.deps.metrics.upstreamTlsFailed(x.partnerSlug, tls)
    if (!x.answered) judgeAttempt(x, 'failed', now)
    x.reached = false
    return failBeforeResponse(x, 'upstream_error', `the TLS connection to the partner failed (${tls.replaceAll('_', ' ')})`)
  }
  // a held (paid) answer that broke mid-body was already judged when its headers came
  if (!x.answered) judgeAttempt(x, 'failed', now)
  // the partner failed this attempt, as with a 5xx: it charges nothing
  x.reached = false
  const code = upstreamErrorCode(err)
  // a connection that failed or broke before any answer (a refused connect, a reused
  // keep-alive socket the partner had closed) is safe to try again; a timeout used the deadline
  if ((code === 'upstream_error' || isConnectTimeout(err)) && mayRetry(x)) {
    const next = retryCredential(x, now)
    const delay = backoff(x)
    if (next !== null && delay >= 0 && x.upstream!.guards.budget.tryRetry(now)) {
      x.credential = next
      x.retryDelayMs = delay
      x.retryReason = 'connection'
      return scheduleRetry(x)
    }
  }
  x.deps.logger.warn({ request_id: x.requestId, key_id: x.context?.keyId, partner: x.partnerSlug, attempts: x.attempt, err: errorSummary(err) }, 'upstream request failed')
  failBeforeResponse(x, code, code === 'upstream_timeout' ? 'the partner did not answer in time' : 'the partner connection failed')
}

export function attemptUpgraded (x: ExchangeState): void {
  x.abort?.(new Error('upgrade not supported'))
}

/** what to redact from the answer's headers: the credential's secrets, and an access token the attempt carried */
export function secretFormsOf (x: ExchangeState, credential: CredentialRoute): readonly string[] {
  const token = credential.signer === null || x.signedHeaders === null ? null : credential.signer.carriedSecret(x.signedHeaders)
  return token === null || token.length < 8 ? credential.secretForms : [...credential.secretForms, token]
}

/** the signer is ready (an access token came): the attempt goes on, if anyone still waits */
export function signerReady (x: ExchangeState): void {
  x.waitingForSigner = false
  if (x.settled) return
  x.attemptNow()
}

export function signerFailed (x: ExchangeState, err: unknown): void {
  x.waitingForSigner = false
  if (x.settled) return
  x.deps.logger.error({ request_id: x.requestId, partner: x.partnerSlug, credential_id: x.credential!.id, err: (err as Error).message ?? errorSummary(err).type }, 'could not get an access token for the partner')
  failBeforeResponse(x, 'upstream_error', `could not get an access token from partner ${x.partnerSlug}`)
}

/**
 * The partner's reason phrase when node:http can send it as is (printable ASCII), else '' for
 * node's standard one: writeHead throws on anything else (undici hands over non-ASCII bytes
 * decoded), which left the client without an answer.
 */
function reasonPhrase (statusText: string): string {
  return PRINTABLE_ASCII.test(statusText) ? statusText : ''
}

const PRINTABLE_ASCII = /^[\t\x20-\x7e]*$/

/** a retried attempt's answer larger than this is not drained: its connection is dropped */
const MAX_DRAIN_BYTES = 64 * 1024

class DrainTooLongError extends Error {
  readonly code = 'RELAYKEY_DRAIN_TOO_LONG'
  constructor () {
    super('the answer of a retried attempt was too large to drain')
    this.name = 'DrainTooLongError'
  }
}

/** the answer's Content-Length, -1 when it has none */
function contentLengthOf (rawHeaders: Buffer[]): number {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    if (name.length === 14 && name.toString('latin1').toLowerCase() === 'content-length') return Number(rawHeaders[i + 1]!.toString('latin1'))
  }
  return -1
}

function isConnectTimeout (err: Error): boolean {
  return (err as { code?: string }).code === 'UND_ERR_CONNECT_TIMEOUT'
}

function upstreamErrorCode (err: Error): ErrorCode {
  switch ((err as { code?: string }).code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'RELAYKEY_DEADLINE':
      return 'upstream_timeout'
    default:
      return 'upstream_error'
  }
}
