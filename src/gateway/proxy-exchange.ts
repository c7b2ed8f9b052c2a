// One proxied request from arrival to the last response byte: authenticate, apply the key's
// policy, pick a credential, forward through the partner's Pool and stream the answer back.
//
// HOT PATH. The exchange is the undici dispatch handler itself (legacy raw-header API, which
// undici's core calls without an adapter), its steps are prototype methods, and the response
// listeners are module-level functions that find the exchange on the response object, so a
// request allocates this object and its header arrays but no closures. Only the steps that wait
// on a store go through a promise: a key-cache miss, an unknown partner, and the limits decision
// when the key has limits (ioredis and the batching in the Redis store are promise-based).
//
// Reliability (docs/reliability.md): the partner environment's and the credential's circuit
// breakers are checked before any limit is spent; the partner's concurrency gate is held from
// admission to the last byte; an attempt that fails on the connection, or answers a status the
// partner's `retry.on_status` lists, is sent again after a full-jitter backoff when the request
// is replayable (idempotent or carrying Idempotency-Key, body absent or buffered), the retry
// budget allows it and `timeouts.request_ms` (counted over all attempts) leaves time. A retried
// attempt's response is drained, never shown to the client.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Dispatcher } from 'undici'
import type { Logger } from 'pino'
import { errorBody, errorSummary, statusOf, type ErrorCode } from '../errors.js'
import type { GatewayMetrics } from '../telemetry/gateway-metrics.js'
import { ExchangeFacts, type ExchangeReporter } from './exchange-report.js'
import { boundedPartner, boundedPath } from '../audit/bounded-fields.js'
import { checkProxyPath, withoutQueryParam, type CheckedPath } from './proxy-path.js'
import { connectionTokens, copyRequestHeaders, responseHeaders } from './header-rules.js'
import { tlsFailureReason } from '../partner-auth/tls-failure.js'
import type { SignedBodyMemory } from '../partner-auth/signed-body-memory.js'
import { isTraceMethod, PROXY_METHODS, traceRefusal } from './trace-methods.js'
import { findEndpoint } from './endpoint-pattern.js'
import { closeIfDraining, rawErrorResponse, sendJson } from './respond.js'
import type { CredentialOrder, CredentialRoute, KeyContext, UpstreamTarget } from './key-context.js'
import type { Admission, AdmissionRequest, AdmissionStore, CredentialCandidate, LimitState, Reservation } from '../limits/admission.js'
import { costOf } from '../limits/compile-limits.js'
import type { InFlightCounts } from '../limits/in-flight-counts.js'
import { pushRateLimitHeaders } from '../limits/rate-limit-headers.js'
import type { KeyResolver } from './key-resolver.js'
import type { PartnerDirectory } from './partner-directory.js'
import { fullJitterDelayMs, isIdempotentMethod, retryAfterMs } from '../reliability/retry-rules.js'
import type { PaymentServices } from '../payments/payment-services.js'
import { PaidExchange, type PaymentRefusal } from './paid-exchange.js'
import { priceFor } from '../payments/compile-payment.js'
import { PAYMENT_REQUIRED, PAYMENT_SIGNATURE, X_PAYMENT, paymentResponseHeaders } from '../payments/x402-headers.js'
import type { SettleOutcome } from '../payments/facilitator-answers.js'

export interface ExchangeDeps {
  keys: KeyResolver
  partners: PartnerDirectory
  /** the store's decisions, and this worker's leases for the keys hot enough to have them */
  admission: AdmissionStore & { admitLocally (request: AdmissionRequest): Admission | null }
  payments: PaymentServices
  /** this worker's share of each key's and customer's max_in_flight */
  concurrency: InFlightCounts
  /** a client that stops reading the response for this long is cut off (RELAYKEY_CLIENT_IDLE_TIMEOUT_MS) */
  clientStallMs: number
  reporter: ExchangeReporter
  metrics: GatewayMetrics
  logger: Logger
  /** bodies held to be signed, bounded per worker */
  signedBodies: SignedBodyMemory
}

const NO_CANDIDATES: readonly CredentialCandidate[] = Object.freeze([])

const kExchange = Symbol('relaykey.exchange')
type ExchangeResponse = ServerResponse & { [kExchange]?: ProxyExchange }
type ExchangeRequest = IncomingMessage & { [kExchange]?: ProxyExchange }

/** which breakers' probe slot the current attempt holds */
const PROBE_PARTNER = 1
const PROBE_CREDENTIAL = 2

type RetryReason = 'connection' | 'status' | 'credential_rejected' | 'token_refresh'

/** how the answer ends once the audit event is in the log */
const enum Finish { None, End, Json, Raw }

export class ProxyExchange implements Dispatcher.DispatchHandler {
  readonly #deps: ExchangeDeps
  readonly #req: ExchangeRequest
  /** the client's connection; undici clears req.socket once it has read the body */
  readonly #socket: ClientSocket
  readonly #res: ExchangeResponse
  readonly requestId: string
  #partnerSlug = ''
  #query = ''
  #path: CheckedPath | null = null
  #context: KeyContext | null = null
  #abort: ((err?: Error) => void) | null = null
  #resume: (() => void) | null = null
  #hasBody = false
  /** the client's Content-Length, -1 when absent (chunked or no body) */
  #contentLength = -1
  #idempotencyKey = false
  /** the client's Host, for the x402 resource URL */
  #host = ''
  #paymentSignature: string | undefined = undefined
  #xPayment: string | undefined = undefined
  /** x402: only for requests a paid policy charges for */
  #paid: PaidExchange | null = null
  #upstream: UpstreamTarget | null = null
  #groups: { readonly owner: string; readonly partner: string } | null = null
  /** ids of the credentials whose vendor quota this request has spent (quota partners only) */
  #quotaSpent: string[] | null = null
  #preferred: CredentialRoute | null = null
  #order: CredentialOrder | null = null
  #limitState: LimitState | null = null
  #reservation: Reservation | null = null
  /** the credential of the current attempt (the admitted one until the first is sent) */
  #credential: CredentialRoute | null = null
  /** what each attempt sends: the client's stream (sent once), a buffered copy, or nothing */
  #body: IncomingMessage | Buffer | null = null
  #bodyChunks: Buffer[] | null = null
  #bodyBytes = 0
  /** bytes of this request's body counted in deps.signedBodies, given back at #report */
  #signedBytesHeld = 0
  /** a signed body is read whole up to this many bytes (UpstreamTarget.signedBodyLimit); -1: no bound here */
  #bodyLimit = -1
  /** the current attempt's headers, kept when a signer made them (a 401 says which token failed) */
  #signedHeaders: string[] | null = null
  /** a 401 already had its access token refreshed and the request sent once more */
  #tokenRefreshed = false
  /** the next attempt waits for its signer (an OAuth2 access token being fetched) */
  #waitingForSigner = false
  /** the request may be sent more than once */
  #replayable = false
  #attempt = 0
  /** performance.now() after which no attempt starts and the last one times out */
  #deadline = 0
  #probes = 0
  #inGate = false
  /** the current attempt's response is being drained because a retry follows */
  #discarding = false
  #retryDelayMs = 0
  #retryReason: RetryReason = 'connection'
  #retryTimer: NodeJS.Timeout | null = null
  /** armed while the client is not reading what the partner sends */
  #stallTimer: NodeJS.Timeout | null = null
  /**
   * request_ms, precisely, once a retry is in play (a drain or a later attempt): undici's
   * headersTimeout runs on a coarse (~0.5 s) timer wheel and knows nothing of drains
   */
  #deadlineTimer: NodeJS.Timeout | null = null
  /** the deadline passed while an attempt waited for a connection: abort it once it has one */
  #deadlinePassed = false
  /** the current attempt's headers arrived (the breakers were told) */
  #answered = false
  /**
   * an attempt's request head may have reached the partner (undici took a connection for it and
   * was not stopped) and the partner has not answered it with a 5xx: the request is then
   * charged even if its client leaves
   */
  #reached = false
  /** the key's and the customer's max_in_flight slots this request holds (#enterKeySlots) */
  #keySlot: string | null = null
  #customerSlot: string | null = null
  /** an answer's head was a success; the partner's breaker hears so at the end (#report) */
  #partnerSucceeding = false
  /** bytes of a retried attempt's answer drained so far */
  #drained = 0
  /** the upstream finished or failed; nothing more may happen */
  #settled = false
  #reported = false
  /**
   * What ends the answer once the audit event is in the local log (auditLogged): nothing, a
   * res.end() (with #heldChunk, the body's last bytes held back), or a JSON answer of RelayKey's
   */
  #finish: Finish = Finish.None
  #heldChunk: Buffer | null = null
  #jsonStatus = 0
  #jsonBody = ''
  /** a whole HTTP response for the socket itself (Finish.Raw) */
  #rawAnswer = ''
  /** the request passed its checks and its body is being read or sent (#send) */
  #sending = false
  /** the body broke framing while the request was still being decided: #send answers 400 */
  #bodyBroken = false
  #jsonHeaders: string[] | undefined = undefined
  /** the partner answer's Content-Length, -1 without one: its last bytes wait for the audit log */
  #answerLength = -1
  /**
   * `Expect: 100-continue`: the client holds its body back until told to go on, which it is
   * only once its key, policy, limits and payment have let the request through (#send)
   */
  #expectsContinue = false
  readonly #facts: ExchangeFacts

  constructor (deps: ExchangeDeps, req: IncomingMessage, res: ServerResponse, requestId: string) {
    this.#deps = deps
    this.#req = req
    this.#res = res
    this.#socket = req.socket
    this.requestId = requestId
    this.#facts = new ExchangeFacts(requestId, req.method!)
    this.#res[kExchange] = this
  }

  /** `rest` is the raw path after `/proxy/{partner}/`; `query` excludes the '?' */
  start (partnerSlug: string, rest: string, query: string): void {
    this.#partnerSlug = partnerSlug
    this.#query = query
    // the client's own text, bounded before it reaches its audit event and the access log
    this.#facts.requestedPartner = boundedPartner(partnerSlug)
    this.#facts.path = boundedPath('/' + rest)
    // checked now, refused once the key is known, so a probing key shows up in its own audit trail
    this.#path = checkProxyPath(rest)

    const raw = this.#req.rawHeaders
    let key: string | undefined
    let hosts = 0
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!
      switch (name.length) {
        case 4:
          if (name.toLowerCase() === 'host') {
            hosts++
            this.#host = raw[i + 1]!
          }
          break
        case 6:
          if (name.toLowerCase() === 'expect' && raw[i + 1]!.toLowerCase() === '100-continue') this.#expectsContinue = true
          break
        case 9:
          if (name.toLowerCase() === X_PAYMENT) this.#xPayment = raw[i + 1]
          break
        case 10:
          if (name.toLowerCase() === 'x-relaykey') key = raw[i + 1]
          break
        case 14:
          if (name.toLowerCase() === 'content-length') {
            this.#contentLength = Number(raw[i + 1])
            if (this.#contentLength !== 0) this.#hasBody = true
          }
          break
        case 15:
          if (name.toLowerCase() === 'idempotency-key') this.#idempotencyKey = true
          break
        case 17: {
          const lower = name.toLowerCase()
          if (lower === 'transfer-encoding') {
            this.#hasBody = true
            this.#contentLength = -1
          } else if (lower === PAYMENT_SIGNATURE) {
            this.#paymentSignature = raw[i + 1]
          }
          break
        }
      }
    }
    if (hosts > 1) return this.#refuse('bad_request', 'more than one Host header')
    // RFC 9112 §3.2 (node:http is told not to answer this itself, which it does without JSON or a request id)
    if (hosts === 0 && this.#req.httpVersionMinor === 1) return this.#refuse('bad_request', 'an HTTP/1.1 request needs a Host header')
    if (isTraceMethod(this.#req.method!)) return this.#refuse('method_not_allowed', traceRefusal(this.#req.method!), ['allow', PROXY_METHODS])
    if (key === undefined || key === '') return this.#refuse('missing_key', 'send your virtual key in the X-RelayKey header')

    const digest = this.#deps.keys.digestOf(key)
    if (digest === null) return this.#refuse('invalid_key', 'the virtual key is malformed or its checksum is wrong')
    const context = this.#deps.keys.cached(digest)
    if (context !== undefined) return this.#authorize(context)
    this.#deps.keys.load(digest).then(
      (loaded) => this.#authorize(loaded),
      (err: unknown) => this.#governanceFailed(err),
    )
  }

  #authorize (context: KeyContext | null): void {
    if (context === null) return this.#refuse('invalid_key', 'unknown virtual key')
    this.#facts.context = context
    if (context.revoked) return this.#refuse('key_revoked', 'this virtual key has been revoked')
    const now = this.#facts.ts
    if (context.expiresAt <= now) return this.#refuse('key_expired', 'this virtual key has expired')
    if (context.hashExpiresAt <= now) return this.#refuse('key_expired', 'this virtual key was rotated and its grace period is over')
    this.#context = context
    if (this.#path === null) return this.#refuse('invalid_path', 'the path must stay under the partner\'s base URL')
    // RFC 9112 has no fragment in a request target, and Node's parser lets one through; a '#'
    // in the path is refused above, and in the query it would hide a query-auth credential
    // appended after it from the partner, which would then refuse the credential
    if (this.#query.indexOf('#') !== -1) return this.#refuse('bad_request', 'the request target may not contain "#"')

    const route = context.routes.get(this.#partnerSlug)
    if (route === undefined) {
      this.#deps.partners.exists(this.#partnerSlug).then(
        (exists) => {
          if (!exists) return this.#refuse('unknown_partner', `no partner ${this.#partnerSlug}`)
          this.#facts.partner = this.#partnerSlug
          this.#refuse('partner_not_allowed', `this key's policy has no binding to partner ${this.#partnerSlug}`)
        },
        (err: unknown) => this.#governanceFailed(err),
      )
      return
    }
    this.#facts.partner = route.slug
    this.#groups = route.groups
    const upstream = route.upstream
    if (upstream === null) {
      // the operator's configuration, not the key's rules: a 5xx the client can report, naming why
      if (route.misconfigured !== null) return this.#refuse('partner_misconfigured', `partner ${route.slug} cannot be called in environment ${context.environment}: ${route.misconfigured}`)
      return this.#refuse('environment_not_allowed', `partner ${route.slug} has no base URL for environment ${context.environment}`)
    }
    const method = this.#req.method!
    const allow = context.policy.allow
    if (allow !== null && findEndpoint(allow, method, this.#path!.match) === -1) {
      return this.#refuse('endpoint_not_allowed', `${method} ${this.#path!.match} is not allowed by policy ${context.policy.name}`)
    }
    this.#upstream = upstream
    // a body that must be signed is read whole: one over the partner's bound is refused before
    // anything is charged (a chunked one, once it passes the bound while being read)
    if (upstream.signedBodyLimit >= 0 && this.#contentLength > upstream.signedBodyLimit) {
      return this.#refuse('payload_too_large', `partner ${route.slug} signs request bodies, which may be at most ${upstream.signedBodyLimit} bytes`)
    }
    // Breakers and the concurrency gate come before limits: a request that will not be sent
    // must not spend the key's rate limit or budget.
    if (upstream.breaker.blocks(now)) {
      return this.#circuitOpen(upstream.breaker.retryAfterMs(now), `partner ${route.slug} is failing; RelayKey stopped sending to it for a while`)
    }
    const preferred = usableCredential(upstream, now)
    if (preferred === null) {
      return this.#circuitOpen(soonestRetryMs(upstream.routes, now), `every credential of partner ${route.slug} is failing`)
    }
    // a full cap refuses before any limit is spent; the slot itself is taken when the first
    // attempt is dispatched (#attemptNow), so a client still sending its body holds none
    if (upstream.guards.gate.full()) return this.#refuse('circuit_open', `partner ${route.slug} has too many requests in flight`, RETRY_SOON)
    if (!this.#enterKeySlots(context)) return
    const payment = context.policy.payment
    if (payment !== null) {
      // read before any limit is spent: a request without a usable payment costs nothing
      const price = priceFor(payment, method, this.#path!.match)
      if (price !== null) {
        const paid = new PaidExchange(this.#deps.payments, this.#deps.logger, payment, price, this.#deps.payments.resourceUrl(this.#host, this.#req.url!))
        this.#paid = paid
        const reason = paid.read(this.#paymentSignature, this.#xPayment)
        if (reason !== null) return this.#paymentRequired(reason)
      }
    }
    const limits = context.limits
    const cost = costOf(limits.costs, method, this.#path!.match)
    this.#facts.cost = cost
    if (limits.limits.length === 0 && limits.budgets.length === 0 && upstream.orders === null) {
      return this.#forward(preferred)
    }
    // Every limit, budget and vendor quota is decided together: from this worker's leases when
    // they cover the request, else by one store round trip.
    this.#preferred = preferred
    this.#order = upstream.orders === null ? null : usableOrder(upstream.orders[preferred.index]!, now)
    const request: AdmissionRequest = {
      limits: limits.limits,
      budgets: limits.budgets,
      cost,
      credentials: this.#order === null ? NO_CANDIDATES : this.#order.candidates,
      now,
      groups: route.groups,
    }
    const local = this.#deps.admission.admitLocally(request)
    if (local !== null) return this.#admitted(local)
    this.#deps.admission.admit(request).then(
      (admission) => this.#admitted(admission),
      (err: unknown) => this.#admissionFailed(err),
    )
  }

  #admitted (admission: Admission): void {
    if (!admission.ok) {
      this.#facts.cost = 0
      return this.#limitRefused(admission, admission.tightest)
    }
    this.#limitState = admission.tightest
    this.#reservation = admission.reservation
    const credential = admission.credential === -1 ? this.#preferred! : this.#order!.routes[admission.credential]!
    if (this.#order !== null) this.#quotaSpent = [credential.id]
    this.#forward(credential)
  }

  #admissionFailed (err: unknown): void {
    if (this.#context!.failOpen) {
      this.#deps.logger.warn({ request_id: this.requestId, key_id: this.#context!.keyId, err: errorSummary(err) }, 'limits store unavailable; policy fails open, forwarding unmetered')
      return this.#forward(this.#preferred!)
    }
    this.#governanceFailed(err)
  }

  /** admitted: a paid request's payment is claimed and verified first */
  #forward (credential: CredentialRoute): void {
    this.#credential = credential
    if (this.#paid === null) return this.#send()
    this.#paid.claimAndVerify().then(
      (refusal) => this.#paymentChecked(refusal),
      (err: unknown) => this.#paymentChecked({ code: 'upstream_error', reason: errorSummary(err).type }),
    )
  }

  #paymentChecked (refusal: PaymentRefusal | null): void {
    if (refusal === null) return this.#send()
    this.#refund()
    switch (refusal.code) {
      case 'payment_required': return this.#paymentRequired(refusal.reason)
      case 'governance_unavailable': return this.#governanceFailed(refusal.err)
      case 'upstream_error':
        this.#deps.logger.warn({ request_id: this.requestId, reason: refusal.reason }, 'payment not verified: facilitator failed')
        return this.#refuse('upstream_error', 'the payment facilitator did not answer usably; nothing was charged')
    }
  }

  /** decide how the body travels, then send the first attempt */
  #send (): void {
    const res = this.#res
    if (res.destroyed || this.#socket.destroyed) return this.clientClosed()
    this.#sending = true
    if (this.#bodyBroken) return this.#answerMalformedBody()
    res.on('close', onResponseClose)
    // Pipelined behind a response still going out: this one has no socket yet and gets no
    // 'close' if the client leaves, so the connection itself is watched.
    if (res.socket === null) watchQueued(this.#socket, this)
    const upstream = this.#upstream!
    const retry = upstream.retry
    upstream.guards.budget.recordRequest(this.#facts.ts)
    const req = this.#req
    const mayRetry = retry.maxAttempts > 1 && (this.#idempotencyKey || isIdempotentMethod(req.method!))
    if (!this.#hasBody) {
      this.#replayable = mayRetry
      return this.#attemptNow()
    }
    if (this.#expectsContinue) {
      this.#expectsContinue = false
      res.writeContinue()
    }
    const signed = upstream.signedBodyLimit >= 0
    // an access token the partner refuses is refreshed and the request sent again, so a small
    // body is kept for that too (signers that need no body: OAuth2)
    const keep = signed || ((mayRetry || this.#credential!.signer !== null) && this.#contentLength > 0 && this.#contentLength <= retry.replayBufferBytes)
    if (keep) {
      // small enough to keep (or signed): read it all, then every attempt sends the same bytes
      this.#replayable = mayRetry
      if (signed) this.#bodyLimit = upstream.signedBodyLimit
      this.#bodyChunks = []
      req[kExchange] = this
      req.on('data', onRequestData)
      req.on('end', onRequestEnd)
      return
    }
    // unknown or large: streamed once, so never retried
    this.#body = req
    this.#attemptNow()
  }

  bodyChunk (chunk: Buffer): void {
    if (this.#bodyChunks === null) return // refused for its size: the rest is read and dropped
    this.#bodyBytes += chunk.length
    if (this.#bodyLimit >= 0) {
      if (this.#bodyBytes > this.#bodyLimit) return this.#signedBodyTooLarge()
      if (!this.#deps.signedBodies.take(chunk.length)) return this.#signedBodiesFull()
      this.#signedBytesHeld += chunk.length
    }
    this.#bodyChunks.push(chunk)
  }

  /** the worker holds as many signed bodies as it may: this one waits for a retry, uncharged */
  #signedBodiesFull (): void {
    this.#bodyChunks = null
    this.#res.shouldKeepAlive = false
    this.#deps.logger.warn({ request_id: this.requestId, partner: this.#partnerSlug, held_bytes: this.#deps.signedBodies.held() }, 'signed request bodies in memory reached RELAYKEY_SIGNED_BODY_MEMORY_BYTES; request refused')
    this.#failBeforeResponse('circuit_open', 'RelayKey holds as many request bodies for signing as it may; retry shortly', 1000)
  }

  /** a chunked body passed the signing bound while being read: 413, nothing sent, nothing charged */
  #signedBodyTooLarge (): void {
    this.#bodyChunks = null
    this.#res.shouldKeepAlive = false // the rest of the body is not read as a next request
    this.#failBeforeResponse('payload_too_large', `partner ${this.#partnerSlug} signs request bodies, which may be at most ${this.#bodyLimit} bytes`)
  }

  bodyComplete (): void {
    if (this.#bodyChunks === null) return
    const body = Buffer.concat(this.#bodyChunks)
    this.#bodyChunks = null
    this.#body = body
    this.#facts.bytesIn = body.length
    if (!this.#settled) this.#attemptNow()
  }

  /** one attempt: take the breakers' probe slots if due, then dispatch */
  #attemptNow (): void {
    const upstream = this.#upstream!
    const credential = this.#credential!
    // request_ms starts with the first attempt (a wait for its access token included), once a
    // buffered body has been read
    if (this.#deadline === 0) this.#deadline = performance.now() + upstream.requestTimeoutMs
    else if (performance.now() >= this.#deadline) return this.#failBeforeResponse('upstream_timeout', 'the partner did not answer in time')
    const signer = credential.signer
    if (signer !== null) {
      // an access token to fetch first (OAuth2): the attempt starts once it is there, or the
      // request ends at its deadline
      const waiting = signer.ready(Date.now())
      if (waiting !== null) {
        this.#waitingForSigner = true
        this.#armDeadline()
        waiting.then(() => signerReady(this), (err: unknown) => this.#signerFailed(err))
        return
      }
    }
    const facts = this.#facts
    if (!this.#inGate) {
      if (!upstream.guards.gate.tryEnter()) return this.#failBeforeResponse('circuit_open', `partner ${this.#partnerSlug} has too many requests in flight`, 1000)
      this.#inGate = true
    }
    const now = Date.now()
    const partnerEntry = upstream.breaker.enter(now)
    if (partnerEntry === 'refused') {
      return this.#failBeforeResponse('circuit_open', `partner ${facts.partner} is failing; RelayKey stopped sending to it for a while`, upstream.breaker.retryAfterMs(now))
    }
    const credentialEntry = credential.breaker.enter(now)
    if (credentialEntry === 'refused') {
      if (partnerEntry === 'probe') upstream.breaker.releaseProbe()
      return this.#failBeforeResponse('circuit_open', `every credential of partner ${facts.partner} is failing`, credential.breaker.retryAfterMs(now))
    }
    this.#probes = (partnerEntry === 'probe' ? PROBE_PARTNER : 0) | (credentialEntry === 'probe' ? PROBE_CREDENTIAL : 0)
    this.#answered = false
    this.#attempt++
    facts.attempts = this.#attempt
    facts.credentialId = credential.id
    facts.dispatched = performance.now()

    const req = this.#req
    const raw = req.rawHeaders
    const headers: string[] = []
    copyRequestHeaders(raw, upstream.credentialHeader, connectionTokens(raw), headers, upstream.signerHeaders)
    headers.push('x-relaykey-request-id', this.requestId)
    if (credential.headerName !== null) headers.push(credential.headerName, credential.headerValue)
    let query = this.#query
    if (credential.queryPair !== null) {
      query = withoutQueryParam(query, upstream.credentialQueryParam!)
      query = query === '' ? credential.queryPair : query + '&' + credential.queryPair
    }
    const path = upstream.basePath + '/' + this.#path!.raw + (query === '' ? '' : '?' + query)
    if (signer !== null) {
      // signed afresh on every attempt: a retry gets a new timestamp, nonce and signature
      const body = this.#body
      signer.sign(req.method!, path, body === null || body === req ? null : body as Buffer, headers, Date.now())
      this.#signedHeaders = headers
    }
    const remaining = Math.max(1, Math.ceil(this.#deadline - facts.dispatched))
    if (this.#attempt > 1) this.#armDeadline()
    ;(credential.pool ?? upstream.pool).dispatch({
      method: req.method as Dispatcher.HttpMethod,
      path,
      headers,
      body: this.#body,
      // the first attempt: request_ms, to undici's precision; later ones: RelayKey's own timer
      // ends them, and undici's (one tick later) can never fire first
      headersTimeout: this.#attempt === 1 ? remaining : remaining + 1000,
      // between body chunks: a stream that keeps sending (SSE) is never cut
      bodyTimeout: upstream.requestTimeoutMs,
    }, this)
  }

  // undici dispatch handler (legacy API: raw Buffer headers, boolean backpressure)

  onConnect (abort: (err?: Error) => void): void {
    this.#abort = abort
    if (this.#res.destroyed) abort()
    else if (this.#deadlinePassed) abort(new DeadlineExceededError())
    // undici writes the request head right after this returns, unless it was aborted here
    else this.#reached = true
  }

  /** undici 7 passes the chunk itself, though its types say a size: accept both */
  onBodySent (chunk: Buffer | string | number): void {
    // a buffered body was counted once when it was read; a streamed one is counted as it goes
    if (this.#body !== this.#req) return
    this.#facts.bytesIn += typeof chunk === 'number' ? chunk : chunk.length
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true // 1xx: the final answer is still to come
    this.#resume = resume
    this.#answered = true
    const facts = this.#facts
    const upstream = this.#upstream!
    facts.status = statusCode
    facts.upstreamLatencyMs = performance.now() - facts.dispatched
    this.#deps.metrics.upstreamResponded(facts.partner, statusCode, facts.upstreamLatencyMs / 1000)
    const now = Date.now()
    // a 401 to an attempt that carried an access token: that token is dropped, and the request
    // goes once more with a fresh one when it can; when it cannot, the 401 goes to the client,
    // and no breaker holds a stale token against the credential
    let staleToken = false
    if (statusCode === 401 && this.#signedHeaders !== null && this.#credential!.signer?.refused(this.#signedHeaders) === true && !this.#tokenRefreshed) {
      if (this.#mayRefreshToken()) return true
      staleToken = true
    }
    // The vendor refusing the credential: this request fails over to another credential when
    // there is one. The credential's breaker hears of it only once a second key sees the same
    // (CircuitBreaker.rejected): 401 then takes it out of rotation, 403 (which may only mean
    // "not this resource") counts as a failure. 502–504 say the partner is unwell; a 500 may be
    // this one request's doing and says nothing about the partner's health.
    const other = (statusCode === 401 && !staleToken) || statusCode === 403 ? this.#otherCredential(now) : null
    const refused = other !== null
    this.#judgeAttempt(statusCode >= 502 && statusCode <= 504 ? 'failed' : !refused ? 'succeeded' : statusCode === 401 ? 'rejected' : 'forbidden', now)
    // a 5xx is the partner saying it did not do the work: this attempt charges nothing
    if (statusCode >= 500) this.#reached = false
    if ((refused || upstream.retry.onStatus.includes(statusCode)) && this.#mayRetry()) {
      const next = refused ? other : this.#retryCredential(now)
      const delay = refused ? 0 : this.#retryDelay(rawHeaders, now)
      // a breaker this answer just opened leaves the answer as it is: no retry into a 503
      if (next !== null && delay >= 0 && upstream.guards.budget.tryRetry(now)) {
        this.#credential = next
        this.#discarding = true
        this.#drained = 0
        this.#armDeadline() // the drain counts against request_ms too
        this.#retryDelayMs = delay
        this.#retryReason = refused ? 'credential_rejected' : 'status'
        return true
      }
    }
    this.#clearDeadline()
    // no attempt follows: a body held to be signed is not needed while the answer streams
    this.#giveBackSignedBody()
    if (statusCode >= 500) this.#refund()
    // a paid answer below 400 goes on to be settled though its client left; any other has nobody to go to
    if (this.#res.destroyed && (this.#paid === null || statusCode >= 400)) {
      this.#clientLeftDuringAttempt()
      return true
    }
    const res = this.#res
    const headers = responseHeaders(rawHeaders, this.requestId, upstream.credentialQueryParam, this.#secretFormsOf(this.#credential!))
    pushRateLimitHeaders(headers, this.#context!.limits.policyHeader, this.#limitState)
    if (this.#paid !== null && statusCode < 400) {
      // served, so to be paid for: held until the payment settles
      if (!this.#paid.hold(statusCode, reasonPhrase(statusText), headers, contentLengthOf(rawHeaders))) this.#paidAnswerTooLarge()
      return true
    }
    this.#answerLength = contentLengthOf(rawHeaders)
    const reason = reasonPhrase(statusText)
    closeIfDraining(res, this.#socket)
    if (reason !== '') res.writeHead(statusCode, reason, headers)
    else res.writeHead(statusCode, headers)
    return true
  }

  onData (chunk: Buffer): boolean {
    if (this.#discarding) {
      // a retry follows: drain a small answer to keep the connection, drop a large one
      this.#drained += chunk.length
      if (this.#drained > MAX_DRAIN_BYTES) this.#abort?.(new DrainTooLongError())
      return true
    }
    if (this.#paid?.held != null) {
      if (!this.#paid.add(chunk)) this.#paidAnswerTooLarge()
      return true
    }
    const facts = this.#facts
    facts.bytesOut += chunk.length
    if (this.#answerLength >= 0 && facts.bytesOut >= this.#answerLength) {
      // the answer's last bytes: with a Content-Length they complete it for the client, so they
      // wait until its audit event is in the log (auditLogged)
      this.#heldChunk = chunk
      return true
    }
    const res = this.#res
    if (res.write(chunk)) return true
    res.once('drain', onResponseDrain)
    this.#stallTimer = setTimeout(clientStalled, this.#deps.clientStallMs, this)
    return false
  }

  onComplete (): void {
    if (this.#discarding) return this.#scheduleRetry()
    if (this.#settled) return // a held answer cut off for its size
    this.#settled = true
    if (this.#paid?.held != null) {
      this.#paid.settle().then(
        (outcome) => this.#settlementDone(outcome),
        (err: unknown) => this.#settlementDone({ ok: false, code: 'facilitator_failed', reason: errorSummary(err).type }),
      )
      return
    }
    this.#finish = Finish.End
    this.#facts.outcome = 'forwarded'
    this.#report()
  }

  onError (err: Error): void {
    if (this.#settled) return
    // the drained answer of a retried attempt broke off: the retry goes ahead all the same
    if (this.#discarding) return this.#scheduleRetry()
    this.#paid?.drop() // a held answer that broke off is no answer: nothing to settle
    const res = this.#res
    if (res.destroyed) {
      // the client left (possibly before the dispatch, while limits were decided); undici is
      // telling us it stopped too. The request still gets its audit event.
      this.#settled = true
      this.#releaseProbes()
      if (!res.headersSent) {
        if (!this.#reached) this.#refund()
        this.#facts.status = 499
        this.#facts.outcome = 'client_closed'
      } else {
        this.#facts.outcome = 'forwarded'
      }
      this.#report()
      return
    }
    if (res.headersSent) {
      // mid-body: the only honest signal left is a broken response
      this.#settled = true
      this.#deps.logger.warn({ request_id: this.requestId, err: errorSummary(err) }, 'upstream failed mid-response')
      // (queued behind another answer, it goes once it gets the connection: the earlier answer
      // finishes first)
      res.destroy()
      // truncated: a failure of the partner's, not a success. The breaker counts it (the
      // credential did nothing wrong), the request is refunded as a 5xx is, and the event keeps
      // the status the client got with outcome upstream_error
      this.#partnerSucceeding = false
      this.#upstream!.breaker.failed(Date.now())
      this.#refund()
      this.#facts.outcome = 'upstream_error'
      this.#report()
      return
    }
    const now = Date.now()
    if ((err as { code?: string }).code === 'RELAYKEY_EGRESS_REFUSED') {
      // RelayKey's own policy, not the partner failing (no breaker counts it): no retry, the
      // operator is told why
      this.#releaseProbes()
      this.#deps.logger.error({ request_id: this.requestId, partner: this.#partnerSlug, reason: err.message }, 'partner address refused by the egress policy (RELAYKEY_EGRESS_ALLOW)')
      return this.#failBeforeResponse('upstream_error', 'RelayKey\'s egress policy does not allow connecting to this partner\'s address')
    }
    const tls = tlsFailureReason(err)
    if (tls !== null) {
      // the partner's certificate or the handshake: the same on every attempt, so none follows
      this.#deps.logger.error({ request_id: this.requestId, partner: this.#partnerSlug, tls_reason: tls, err: errorSummary(err) }, `TLS connection to the partner failed: ${tls.replaceAll('_', ' ')}`)
      this.#deps.metrics.upstreamTlsFailed(this.#partnerSlug, tls)
      if (!this.#answered) this.#judgeAttempt('failed', now)
      this.#reached = false
      return this.#failBeforeResponse('upstream_error', `the TLS connection to the partner failed (${tls.replaceAll('_', ' ')})`)
    }
    // a held (paid) answer that broke mid-body was already judged when its headers came
    if (!this.#answered) this.#judgeAttempt('failed', now)
    // the partner failed this attempt, as with a 5xx: it charges nothing
    this.#reached = false
    const code = upstreamErrorCode(err)
    // a connection that failed or broke before any answer (a refused connect, a reused
    // keep-alive socket the partner had closed) is safe to try again; a timeout used the deadline
    if ((code === 'upstream_error' || isConnectTimeout(err)) && this.#mayRetry()) {
      const next = this.#retryCredential(now)
      const delay = this.#backoff()
      if (next !== null && delay >= 0 && this.#upstream!.guards.budget.tryRetry(now)) {
        this.#credential = next
        this.#retryDelayMs = delay
        this.#retryReason = 'connection'
        return this.#scheduleRetry()
      }
    }
    this.#deps.logger.warn({ request_id: this.requestId, key_id: this.#context?.keyId, partner: this.#partnerSlug, attempts: this.#attempt, err: errorSummary(err) }, 'upstream request failed')
    this.#failBeforeResponse(code, code === 'upstream_timeout' ? 'the partner did not answer in time' : 'the partner connection failed')
  }

  onUpgrade (): void {
    this.#abort?.(new Error('upgrade not supported'))
  }

  /** response writable again: let undici read from the upstream socket */
  resume (): void {
    this.#clearStall()
    this.#resume?.()
  }

  /** the client has not read for clientStallMs: its connection goes, and 'close' ends the exchange */
  stalled (): void {
    if (this.#res.socket === null) {
      // queued behind an earlier answer on the connection: that one is what the client is (or
      // is not) reading, and its own timer judges it; this one waits its turn
      this.#stallTimer = setTimeout(clientStalled, this.#deps.clientStallMs, this)
      return
    }
    this.#stallTimer = null
    this.#deps.logger.info({ request_id: this.requestId }, 'client stopped reading the response; connection closed')
    this.#res.destroy()
  }

  #clearStall (): void {
    if (this.#stallTimer === null) return
    clearTimeout(this.#stallTimer)
    this.#stallTimer = null
  }

  /**
   * The client's body broke HTTP framing (an invalid chunk size, a bare LF, an oversized chunk
   * extension) before any answer began: 400 bad_request with this request's id, the attempt
   * aborted, nothing charged, and the event audited as 400. False when it is too late for that.
   */
  bodyMalformed (): boolean {
    if (this.#settled || this.#reported || this.#res.headersSent) return false
    if (!this.#sending) {
      // still deciding (a key load, the limits, a payment claim): those end in a refusal, or in
      // #send, which answers this 400 instead of reading the body. The parser is done with this
      // connection either way, so it closes after the answer
      this.#bodyBroken = true
      this.#res.shouldKeepAlive = false
      return true
    }
    this.#answerMalformedBody()
    return true
  }

  /** the 400 for a body that broke framing: the attempt aborted, nothing charged, audited as 400 */
  #answerMalformedBody (): void {
    this.#settled = true
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer)
    this.#abort?.(new Error('the client sent a malformed body'))
    this.#releaseProbes()
    if (this.#attempt === 0) this.#paid?.release()
    this.#paid?.drop()
    this.#refund()
    const facts = this.#facts
    facts.status = 400
    facts.outcome = 'bad_request'
    const body = errorBody('bad_request', 'the request body is not valid HTTP/1.1 framing (chunked encoding)', this.requestId)
    facts.bytesOut = Buffer.byteLength(body)
    this.#finish = Finish.Raw
    this.#rawAnswer = rawErrorResponse(400, 'Bad Request', body, this.requestId)
    this.#report()
  }

  /**
   * After a 401 dropped the access token the attempt carried: the same request goes once more,
   * at once, with a fresh one, before any breaker hears of it. Only when the body can be sent
   * again (none, or kept), the client is still there and the deadline leaves time.
   */
  #mayRefreshToken (): boolean {
    if (this.#body === this.#req) return false
    if (this.#settled || this.#res.destroyed || performance.now() >= this.#deadline) return false
    this.#tokenRefreshed = true
    this.#releaseProbes()
    // a 401 is the partner saying it did nothing
    this.#reached = false
    this.#discarding = true
    this.#drained = 0
    this.#armDeadline()
    this.#retryDelayMs = 0
    this.#retryReason = 'token_refresh'
    return true
  }

  /** what to redact from the answer's headers: the credential's secrets, and an access token the attempt carried */
  #secretFormsOf (credential: CredentialRoute): readonly string[] {
    const token = credential.signer === null || this.#signedHeaders === null ? null : credential.signer.carriedSecret(this.#signedHeaders)
    return token === null || token.length < 8 ? credential.secretForms : [...credential.secretForms, token]
  }

  /** the signer is ready (an access token came): the attempt goes on, if anyone still waits */
  signerReady (): void {
    this.#waitingForSigner = false
    if (this.#settled) return
    this.#attemptNow()
  }

  #signerFailed (err: unknown): void {
    this.#waitingForSigner = false
    if (this.#settled) return
    this.#deps.logger.error({ request_id: this.requestId, partner: this.#partnerSlug, credential_id: this.#credential!.id, err: (err as Error).message ?? errorSummary(err).type }, 'could not get an access token for the partner')
    this.#failBeforeResponse('upstream_error', `could not get an access token from partner ${this.#partnerSlug}`)
  }

  /** the client went away (or the response finished) */
  clientClosed (): void {
    // reported: its answer is written or waiting for the audit log; nothing left to undo
    if (this.#settled || this.#reported) return
    // x402: the partner has the request and a verified payment stands for it, so the answer is
    // still awaited and the payment settled (nobody reads the answer); onHeaders, onError or
    // the settlement end the exchange
    if (this.#paid !== null && this.#reached && this.#retryTimer === null && !this.#res.headersSent) return
    this.#clientLeftDuringAttempt()
  }

  /**
   * The client is gone before its answer's end. Charged once an attempt may have reached the
   * partner, whose work it then was (docs/limits-and-budgets.md); refunded otherwise.
   */
  #clientLeftDuringAttempt (): void {
    this.#settled = true
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer)
    this.#abort?.()
    this.#releaseProbes()
    if (this.#attempt === 0) this.#paid?.release()
    const facts = this.#facts
    if (!this.#res.headersSent) {
      if (!this.#reached) this.#refund()
      facts.status = 499
      facts.outcome = 'client_closed'
    } else {
      facts.outcome = 'forwarded'
    }
    this.#report()
  }

  /** request_ms is over and the current attempt has no answer: it ends as a timeout */
  deadlineReached (): void {
    this.#deadlineTimer = null
    if (this.#settled || this.#res.headersSent || this.#retryTimer !== null) return
    if (this.#waitingForSigner) {
      this.#waitingForSigner = false
      return this.#failBeforeResponse('upstream_timeout', `no access token from partner ${this.#partnerSlug} within request_ms`)
    }
    // a drain ends here and #scheduleRetry turns it into the 504; an attempt still waiting
    // for a connection is aborted as soon as it gets one
    if (this.#abort === null) this.#deadlinePassed = true
    else this.#abort(new DeadlineExceededError())
  }

  #armDeadline (): void {
    if (this.#deadlineTimer !== null) return
    this.#deadlineTimer = setTimeout(deadlineReached, Math.max(1, this.#deadline - performance.now()), this)
  }

  #clearDeadline (): void {
    if (this.#deadlineTimer === null) return
    clearTimeout(this.#deadlineTimer)
    this.#deadlineTimer = null
  }

  #scheduleRetry (): void {
    this.#discarding = false
    this.#abort = null
    if (performance.now() >= this.#deadline) return this.#failBeforeResponse('upstream_timeout', 'the partner did not answer in time')
    this.#deps.metrics.retried(this.#facts.partner, this.#retryReason)
    this.#retryTimer = setTimeout(retryAttempt, this.#retryDelayMs, this)
  }

  retryNow (): void {
    this.#retryTimer = null
    if (this.#settled) return
    const spent = this.#quotaSpent
    const credential = this.#credential!
    if (spent === null || spent.includes(credential.id)) return this.#attemptNow()
    // no vendor request may be spent on an attempt that will not be sent
    if (performance.now() >= this.#deadline) return this.#failBeforeResponse('upstream_timeout', 'the partner did not answer in time')
    // Failing over spends a request of the new credential's vendor quota: the credentials in
    // order from the chosen one, minus those this request already used, and the store picks the
    // first with room, as at admission.
    const order = usableOrder(this.#upstream!.orders![credential.index]!, Date.now(), spent)
    if (order.candidates.every((c) => c.quota === null)) return this.#attemptNow()
    this.#order = order
    const request: AdmissionRequest = { limits: [], budgets: [], cost: 0, credentials: order.candidates, now: Date.now(), groups: this.#groups! }
    const local = this.#deps.admission.admitLocally(request)
    if (local !== null) return this.#failoverAdmitted(local)
    this.#deps.admission.admit(request).then(
      (admission) => this.#failoverAdmitted(admission),
      (err: unknown) => this.#failoverAdmitted(null, err),
    )
  }

  /** the quota decision for a failover: null when the store did not answer */
  #failoverAdmitted (admission: Admission | null, err?: unknown): void {
    if (this.#settled) return
    if (admission !== null && admission.ok) {
      const credential = this.#order!.routes[admission.credential === -1 ? 0 : admission.credential]!
      this.#credential = credential
      this.#quotaSpent!.push(credential.id)
      return this.#attemptNow()
    }
    if (admission === null && this.#context!.failOpen) {
      this.#deps.logger.warn({ request_id: this.requestId, key_id: this.#context!.keyId, err: errorSummary(err) }, 'limits store unavailable; policy fails open, failing over unmetered')
      return this.#attemptNow()
    }
    this.#settled = true
    this.#refund()
    if (admission === null) return this.#governanceFailed(err)
    this.#limitRefused(admission, this.#limitState)
  }

  /** 429 for a spent limit, budget or quota, with Retry-After and the RateLimit headers of `state` */
  #limitRefused (refusal: Extract<Admission, { ok: false }>, state: LimitState | null): void {
    const headers = ['retry-after', String(refusal.retryAfterSeconds)]
    pushRateLimitHeaders(headers, this.#context!.limits.policyHeader, state)
    this.#refuse(refusal.code, refusalMessage(refusal.code, refusal.name), headers)
  }

  /** another attempt is allowed by the request itself, the partner's settings and the clock */
  #mayRetry (): boolean {
    return this.#replayable && !this.#settled && this.#attempt < this.#upstream!.retry.maxAttempts &&
      !this.#res.destroyed && performance.now() < this.#deadline
  }

  /**
   * How long to wait before retrying an answered attempt, or -1 not to retry: the partner's
   * Retry-After when it asks for one no longer than max_delay_ms (longer: its answer passes
   * through), else full-jitter backoff; never past the deadline.
   */
  #retryDelay (rawHeaders: Buffer[], now: number): number {
    const retry = this.#upstream!.retry
    if (retry.respectRetryAfter) {
      const asked = retryAfterMs(rawHeaders, now)
      if (asked > retry.maxDelayMs) return -1
      if (asked >= 0) return performance.now() + asked < this.#deadline ? asked : -1
    }
    return this.#backoff()
  }

  #backoff (): number {
    const retry = this.#upstream!.retry
    const delay = fullJitterDelayMs(this.#attempt, retry.baseDelayMs, retry.maxDelayMs)
    return performance.now() + delay < this.#deadline ? delay : -1
  }

  /** tell both breakers what this attempt showed */
  #judgeAttempt (verdict: 'succeeded' | 'failed' | 'rejected' | 'forbidden', now: number): void {
    const partner = this.#upstream!.breaker
    const credential = this.#credential!.breaker
    const probes = this.#probes
    this.#probes = 0
    if (verdict === 'failed') {
      // an earlier attempt's success (a 429 or 500 retried) is not this request's verdict
      this.#partnerSucceeding = false
      partner.failed(now)
      credential.failed(now)
    } else if (verdict === 'rejected' || verdict === 'forbidden') {
      partner.succeeded(now) // the partner answered; it is this credential it refuses
      // from one key alone it proves nothing: a probe of the credential's it held ends undecided
      if (!credential.rejected(now, this.#context!.keyId, verdict === 'rejected') && (probes & PROBE_CREDENTIAL) !== 0) credential.releaseProbe()
    } else {
      // the partner's success counts once its answer has come whole (#report): an answer that
      // breaks off mid-body is a failure of the partner's instead. An open breaker (this is its
      // probe) closes at the head, so a long answer does not keep everyone else out; a break
      // later still counts as a failure
      if (partner.isOpen) partner.succeeded(now)
      else this.#partnerSucceeding = true
      credential.succeeded(now)
    }
  }

  #releaseProbes (): void {
    const probes = this.#probes
    if (probes === 0) return
    this.#probes = 0
    if ((probes & PROBE_PARTNER) !== 0) this.#upstream!.breaker.releaseProbe()
    if ((probes & PROBE_CREDENTIAL) !== 0) this.#credential!.breaker.releaseProbe()
  }

  /**
   * The credential a retry goes to: the same one while its breaker lets requests through, else
   * another usable one; null when the partner's breaker (or every credential's) is now open.
   */
  #retryCredential (now: number): CredentialRoute | null {
    if (this.#upstream!.breaker.blocks(now)) return null
    return this.#credential!.breaker.blocks(now) ? this.#otherCredential(now) : this.#credential
  }

  /** a usable credential other than the current attempt's, or null */
  #otherCredential (now: number): CredentialRoute | null {
    return usableAfter(this.#upstream!.routes, this.#credential!, now)
  }

  #circuitOpen (retryAfterMs: number, message: string): void {
    this.#refuse('circuit_open', message, ['retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000)))])
  }

  /** the exchange ends without an upstream answer: units back, then the refusal */
  #failBeforeResponse (code: ErrorCode, message: string, retryAfterMs = -1): void {
    this.#settled = true
    this.#refund()
    if (this.#attempt === 0) this.#paid?.release()
    if (retryAfterMs >= 0) return this.#circuitOpen(retryAfterMs, message)
    this.#refuse(code, message)
  }

  /** 402 with the PAYMENT-REQUIRED header and the same object as the body (docs/payments.md) */
  #paymentRequired (reason: string, extraHeaders?: string[]): void {
    const answer = this.#paid!.required(reason, this.requestId)
    const headers = [PAYMENT_REQUIRED, answer.header]
    if (extraHeaders !== undefined) headers.push(...extraHeaders)
    const facts = this.#facts
    facts.status = 402
    facts.outcome = 'payment_required'
    facts.bytesOut = Buffer.byteLength(answer.body)
    this.#answerJson(402, answer.body, headers)
    this.#report()
  }

  /** a paid answer bigger than RELAYKEY_PAYMENT_BUFFER_BYTES cannot be held: 502, no settle */
  #paidAnswerTooLarge (): void {
    this.#settled = true
    this.#paid!.drop()
    this.#abort?.()
    this.#refund()
    this.#refuse('upstream_error', 'the partner\'s answer is larger than a paid answer may be (RELAYKEY_PAYMENT_BUFFER_BYTES); nothing was charged')
  }

  /** the partner answered below 400 and the payment settled (or not): now the client hears */
  #settlementDone (outcome: SettleOutcome): void {
    const paid = this.#paid!
    const held = paid.held!
    const facts = this.#facts
    const res = this.#res
    if (!outcome.ok) {
      this.#refund()
      if (outcome.code === 'settle_failed') return this.#paymentRequired(outcome.reason, paymentResponseHeaders(paid.version, outcome.response))
      this.#deps.logger.error({ request_id: this.requestId, reason: outcome.reason }, 'payment settlement unknown: facilitator failed; reconcile with the facilitator')
      return this.#refuse('upstream_error', 'the payment could not be settled; the answer is withheld')
    }
    facts.paymentTx = outcome.response.transaction
    facts.paymentAmount = paid.amount
    if (res.destroyed || this.#socket.destroyed) {
      this.#deps.logger.warn({ request_id: this.requestId, payment_tx: facts.paymentTx }, 'client left before its paid answer was sent')
      facts.status = 499
      facts.outcome = 'client_closed'
      return this.#report()
    }
    const headers = held.headers
    headers.push(...paymentResponseHeaders(paid.version, outcome.response))
    const body = paid.body()
    facts.bytesOut = body.length
    closeIfDraining(res, this.#socket)
    if (held.statusText !== '') res.writeHead(held.status, held.statusText, headers)
    else res.writeHead(held.status, headers)
    this.#heldChunk = body
    this.#finish = Finish.End
    facts.outcome = 'forwarded'
    this.#report()
  }

  #refuse (code: ErrorCode, message: string, headers?: string[]): void {
    const facts = this.#facts
    facts.status = statusOf(code)
    facts.outcome = code
    if (this.#res.headersSent) {
      // mid-answer: the only honest signal left is a broken response
      this.#res.destroy()
      facts.bytesOut = 0
    } else {
      const body = errorBody(code, message, this.requestId)
      facts.bytesOut = Buffer.byteLength(body)
      this.#answerJson(facts.status, body, headers)
    }
    this.#report()
  }

  /** RelayKey's own answer, sent once the request's audit event is in the log */
  #answerJson (status: number, body: string, headers: string[] | undefined): void {
    // refused before its body was asked for: the client may never send it, so the connection
    // cannot carry another request after this answer
    if (this.#expectsContinue) this.#res.shouldKeepAlive = false
    this.#finish = Finish.Json
    this.#jsonStatus = status
    this.#jsonBody = body
    this.#jsonHeaders = headers
  }

  /**
   * the policy's max_in_flight for this key and for its customer: a slot of each, held until the
   * exchange ends (#report), or 429 concurrency_limited before any limit is spent
   */
  #enterKeySlots (context: KeyContext): boolean {
    const counts = this.#deps.concurrency
    if (context.keySlot !== null) {
      if (!counts.tryEnter(context.keySlot, context.keyMaxInFlight)) {
        this.#refuse('concurrency_limited', `this key already has its max_in_flight (${context.keyMaxInFlight}) requests in flight`, RETRY_SOON)
        return false
      }
      this.#keySlot = context.keySlot
    }
    if (context.customerSlot !== null) {
      if (!counts.tryEnter(context.customerSlot, context.customerMaxInFlight)) {
        this.#refuse('concurrency_limited', `customer ${context.customer} already has its customer_max_in_flight (${context.customerMaxInFlight}) requests in flight`, RETRY_SOON)
        return false
      }
      this.#customerSlot = context.customerSlot
    }
    return true
  }

  #giveBackSignedBody (): void {
    if (this.#signedBytesHeld === 0) return
    this.#deps.signedBodies.give(this.#signedBytesHeld)
    this.#signedBytesHeld = 0
    this.#body = null
  }

  #report (): void {
    if (this.#reported) return
    this.#reported = true
    this.#giveBackSignedBody()
    if (this.#keySlot !== null) this.#deps.concurrency.leave(this.#keySlot)
    if (this.#customerSlot !== null) this.#deps.concurrency.leave(this.#customerSlot)
    this.#socket[kQueued]?.delete(this)
    this.#clearDeadline()
    this.#clearStall()
    if (this.#inGate) this.#upstream!.guards.gate.leave()
    if (this.#partnerSucceeding) {
      this.#partnerSucceeding = false
      this.#upstream!.breaker.succeeded(Date.now())
    }
    // an answer to end waits for the event to be in the log; a broken or abandoned one does not
    this.#deps.reporter.report(this.#facts, this.#finish === Finish.None ? null : this)
  }

  /** the audit event is in the local log: the client may have the end of its answer now */
  auditLogged (): void {
    try {
      this.#endAnswer()
    } catch (err) {
      // an answer that cannot be ended must not stay open: the client sees the connection go
      this.#deps.logger.error({ request_id: this.requestId, err: errorSummary(err) }, 'answer could not be ended')
      this.#res.destroy()
    }
  }

  #endAnswer (): void {
    const res = this.#res
    const finish = this.#finish
    this.#finish = Finish.None
    if (finish === Finish.Raw) {
      // the request's own framing broke: Node's parser for this connection is done, so the
      // answer goes straight to the socket, which closes behind it
      if (!this.#socket.destroyed) this.#socket.end(this.#rawAnswer)
      return
    }
    if (res.destroyed) return
    if (finish === Finish.Json) {
      sendJson(res, this.#jsonStatus, this.#jsonBody, this.requestId, this.#jsonHeaders)
      return
    }
    const held = this.#heldChunk
    this.#heldChunk = null
    if (held === null) res.end()
    else res.end(held)
    // a client that paid but does not read is cut like any other stalled reader
    if (this.#paid !== null && !res.writableFinished) {
      // cleared once the answer is out, so the timer does not hold the response for clientStallMs
      const cut = setTimeout(destroyIfUnfinished, this.#deps.clientStallMs, res).unref()
      res.once('finish', () => clearTimeout(cut))
    }
  }

  /** the request is not charged: its cost leaves the audit (and so usage) even without a budget */
  #refund (): void {
    this.#facts.cost = 0
    const reservation = this.#reservation
    if (reservation === null) return
    this.#reservation = null
    this.#deps.admission.refund(reservation).catch(logRefundFailure.bind(this.#deps.logger))
  }

  #governanceFailed (err: unknown): void {
    // nothing was forwarded, so nothing is charged: usage then agrees with the budget (a Redis
    // decision that timed out but ran after all keeps its units there; docs/limits-and-budgets.md)
    this.#facts.cost = 0
    this.#deps.logger.error({ request_id: this.requestId, err: errorSummary(err) }, 'control-plane store failed')
    this.#refuse('governance_unavailable', 'a store needed for this decision did not answer', RETRY_SOON)
  }
}

/** a store that did not answer, or a partner's full concurrency cap, is usually free again within seconds (RFC 9110 §10.2.3) */
const RETRY_SOON = ['retry-after', '1']

/**
 * The partner's reason phrase when node:http can send it as is (printable ASCII), else '' for
 * node's standard one: writeHead throws on anything else (undici hands over non-ASCII bytes
 * decoded), which left the client without an answer.
 */
function reasonPhrase (statusText: string): string {
  return PRINTABLE_ASCII.test(statusText) ? statusText : ''
}

const PRINTABLE_ASCII = /^[\t\x20-\x7e]*$/

function onResponseDrain (this: ExchangeResponse): void {
  // not now: a pipelined response is flushed, and drains, when the one before it ends, inside
  // that exchange's undici callback; undici cannot resume another parser from there
  process.nextTick(resumeExchange, this)
}

function resumeExchange (res: ExchangeResponse): void {
  res[kExchange]?.resume()
}

/** the exchange answering `res`, told its client's body broke framing; false if there is none */
export function answerMalformedBody (res: ServerResponse): boolean {
  return (res as ExchangeResponse)[kExchange]?.bodyMalformed() ?? false
}

function onResponseClose (this: ExchangeResponse): void {
  this[kExchange]?.clientClosed()
}

/** exchanges whose responses wait behind another on the same connection */
const kQueued = Symbol('relaykey.queued')
type ClientSocket = Socket & { [kQueued]?: Set<ProxyExchange> }

function watchQueued (socket: ClientSocket, exchange: ProxyExchange): void {
  let queued = socket[kQueued]
  if (queued === undefined) {
    queued = socket[kQueued] = new Set()
    socket.once('close', onQueuedSocketClose)
  }
  queued.add(exchange)
}

function onQueuedSocketClose (this: ClientSocket): void {
  const queued = this[kQueued]
  if (queued === undefined) return
  for (const exchange of [...queued]) exchange.clientClosed()
}

function onRequestData (this: ExchangeRequest, chunk: Buffer): void {
  this[kExchange]!.bodyChunk(chunk)
}

function onRequestEnd (this: ExchangeRequest): void {
  this[kExchange]!.bodyComplete()
}

function retryAttempt (exchange: ProxyExchange): void {
  exchange.retryNow()
}

function clientStalled (exchange: ProxyExchange): void {
  exchange.stalled()
}

function deadlineReached (exchange: ProxyExchange): void {
  exchange.deadlineReached()
}

/** a retried attempt's answer larger than this is not drained: its connection is dropped */
const MAX_DRAIN_BYTES = 64 * 1024

function destroyIfUnfinished (res: ServerResponse): void {
  if (!res.writableFinished) res.destroy()
}

class DrainTooLongError extends Error {
  readonly code = 'RELAYKEY_DRAIN_TOO_LONG'
  constructor () {
    super('the answer of a retried attempt was too large to drain')
    this.name = 'DrainTooLongError'
  }
}

class DeadlineExceededError extends Error {
  readonly code = 'RELAYKEY_DEADLINE'
  constructor () {
    super('timeouts.request_ms passed before the partner answered')
    this.name = 'DeadlineExceededError'
  }
}

/** the weighted round-robin's pick, or the next credential whose breaker lets requests through */
function usableCredential (upstream: UpstreamTarget, now: number): CredentialRoute | null {
  const first = upstream.credentials.next()!
  return first.breaker.blocks(now) ? usableAfter(upstream.routes, first, now) : first
}

/** the first credential after `current`, in index order, whose breaker lets requests through */
function usableAfter (routes: readonly CredentialRoute[], current: CredentialRoute, now: number): CredentialRoute | null {
  for (let i = 1; i < routes.length; i++) {
    const route = routes[(current.index + i) % routes.length]!
    if (!route.breaker.blocks(now)) return route
  }
  return null
}

/**
 * A quota order without the credentials whose breaker is open, nor those in `used` (the same
 * object when none is dropped).
 */
function usableOrder (order: CredentialOrder, now: number, used: readonly string[] = NO_IDS): CredentialOrder {
  const routes = order.routes
  let dropped = 0
  for (let i = 0; i < routes.length; i++) if (!usable(routes[i]!, now, used)) dropped++
  if (dropped === 0) return order
  const kept: CredentialRoute[] = []
  const candidates: CredentialCandidate[] = []
  for (let i = 0; i < routes.length; i++) {
    if (!usable(routes[i]!, now, used)) continue
    kept.push(routes[i]!)
    candidates.push(order.candidates[i]!)
  }
  return { routes: kept, candidates }
}

const NO_IDS: readonly string[] = Object.freeze([])

function usable (route: CredentialRoute, now: number, used: readonly string[]): boolean {
  return !route.breaker.blocks(now) && !used.includes(route.id)
}

function soonestRetryMs (routes: readonly CredentialRoute[], now: number): number {
  let soonest = Infinity
  for (const route of routes) soonest = Math.min(soonest, route.breaker.retryAfterMs(now))
  return soonest
}

function signerReady (exchange: ProxyExchange): void {
  exchange.signerReady()
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

function refusalMessage (code: Extract<Admission, { ok: false }>['code'], name: string): string {
  switch (code) {
    case 'rate_limited': return `the ${name} rate limit is reached`
    case 'budget_exceeded': return `the ${name} monthly budget is spent`
    case 'upstream_quota_exceeded': return 'the partner quota of every usable credential is spent'
  }
}

function logRefundFailure (this: Logger, err: unknown): void {
  this.error({ err: errorSummary(err) }, 'budget refund failed; the units stay spent')
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

