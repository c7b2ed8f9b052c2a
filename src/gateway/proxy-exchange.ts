// One proxied request from arrival to the last response byte: authenticate, apply the key's
// policy, pick a credential, forward through the partner's Pool and stream the answer back.
//
// HOT PATH. The exchange is the undici dispatch handler itself (legacy raw-header API, which
// undici's core calls without an adapter), its steps are prototype methods, and the response
// listeners are module-level functions that find the exchange on the response object, so a
// request allocates this object and its header arrays but no closures. Only the steps that wait
// on a store go through a promise: a key-cache miss, an unknown partner, and the limits decision
// when the key has limits (ioredis and the batching in the Redis store are promise-based).
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Dispatcher } from 'undici'
import type { Logger } from 'pino'
import { statusOf, type ErrorCode } from '../errors.js'
import type { GatewayMetrics } from '../telemetry/gateway-metrics.js'
import { ExchangeFacts, type ExchangeReporter } from './exchange-report.js'
import { checkProxyPath, withoutQueryParam, type CheckedPath } from './proxy-path.js'
import { connectionTokens, copyRequestHeaders, responseHeaders } from './header-rules.js'
import { findEndpoint } from './endpoint-pattern.js'
import { sendError } from './respond.js'
import type { CredentialOrder, CredentialRoute, KeyContext, UpstreamTarget } from './key-context.js'
import type { Admission, AdmissionStore, CredentialCandidate, LimitState, Reservation } from '../limits/admission.js'
import { costOf } from '../limits/compile-limits.js'
import { pushRateLimitHeaders } from '../limits/rate-limit-headers.js'
import type { KeyResolver } from './key-resolver.js'
import type { PartnerDirectory } from './partner-directory.js'

export interface ExchangeDeps {
  keys: KeyResolver
  partners: PartnerDirectory
  admission: AdmissionStore
  reporter: ExchangeReporter
  metrics: GatewayMetrics
  logger: Logger
}

const NO_CANDIDATES: readonly CredentialCandidate[] = Object.freeze([])

const kExchange = Symbol('relaykey.exchange')
type ExchangeResponse = ServerResponse & { [kExchange]?: ProxyExchange }

export class ProxyExchange implements Dispatcher.DispatchHandler {
  readonly #deps: ExchangeDeps
  readonly #req: IncomingMessage
  readonly #res: ExchangeResponse
  readonly requestId: string
  #partnerSlug = ''
  #query = ''
  #path: CheckedPath | null = null
  #context: KeyContext | null = null
  #abort: ((err?: Error) => void) | null = null
  #resume: (() => void) | null = null
  #hasBody = false
  #upstream: UpstreamTarget | null = null
  #preferred: CredentialRoute | null = null
  #order: CredentialOrder | null = null
  #limitState: LimitState | null = null
  #reservation: Reservation | null = null
  /** the upstream finished or failed; nothing more may happen */
  #settled = false
  #reported = false
  readonly #facts: ExchangeFacts

  constructor (deps: ExchangeDeps, req: IncomingMessage, res: ServerResponse, requestId: string) {
    this.#deps = deps
    this.#req = req
    this.#res = res
    this.requestId = requestId
    this.#facts = new ExchangeFacts(requestId, req.method!)
    this.#res[kExchange] = this
  }

  /** `rest` is the raw path after `/proxy/{partner}/`; `query` excludes the '?' */
  start (partnerSlug: string, rest: string, query: string): void {
    this.#partnerSlug = partnerSlug
    this.#query = query
    this.#facts.requestedPartner = partnerSlug
    this.#facts.path = '/' + rest
    // checked now, refused once the key is known, so a probing key shows up in its own audit trail
    this.#path = checkProxyPath(rest)

    const raw = this.#req.rawHeaders
    let key: string | undefined
    let hosts = 0
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!
      switch (name.length) {
        case 4:
          if (name.toLowerCase() === 'host') hosts++
          break
        case 10:
          if (name.toLowerCase() === 'x-relaykey') key = raw[i + 1]
          break
        case 14:
          if (name.toLowerCase() === 'content-length' && raw[i + 1] !== '0') this.#hasBody = true
          break
        case 17:
          if (name.toLowerCase() === 'transfer-encoding') this.#hasBody = true
          break
      }
    }
    if (hosts > 1) return this.#refuse('bad_request', 'more than one Host header')
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
    const upstream = route.upstream
    if (upstream === null) {
      return this.#refuse('environment_not_allowed', `partner ${route.slug} has no base URL or credential for environment ${context.environment}`)
    }
    const method = this.#req.method!
    const allow = context.policy.allow
    if (allow !== null && findEndpoint(allow, method, this.#path!.match) === -1) {
      return this.#refuse('endpoint_not_allowed', `${method} ${this.#path!.match} is not allowed by policy ${context.policy.name}`)
    }
    this.#upstream = upstream
    const preferred = upstream.credentials.next()!
    const limits = context.limits
    const cost = costOf(limits.costs, method, this.#path!.match)
    this.#facts.cost = cost
    if (limits.limits.length === 0 && limits.budgets.length === 0 && upstream.orders === null) {
      return this.#forward(preferred)
    }
    // One store round trip decides every limit, budget and vendor quota together.
    this.#preferred = preferred
    this.#order = upstream.orders === null ? null : upstream.orders[preferred.index]!
    this.#deps.admission.admit({
      limits: limits.limits,
      budgets: limits.budgets,
      cost,
      credentials: this.#order === null ? NO_CANDIDATES : this.#order.candidates,
      now: this.#facts.ts,
      groups: route.groups,
    }).then(
      (admission) => this.#admitted(admission),
      (err: unknown) => this.#admissionFailed(err),
    )
  }

  #admitted (admission: Admission): void {
    const policyHeader = this.#context!.limits.policyHeader
    if (!admission.ok) {
      this.#facts.cost = 0
      const headers = ['retry-after', String(admission.retryAfterSeconds)]
      pushRateLimitHeaders(headers, policyHeader, admission.tightest)
      return this.#refuse(admission.code, refusalMessage(admission.code, admission.name), headers)
    }
    this.#limitState = admission.tightest
    this.#reservation = admission.reservation
    this.#forward(admission.credential === -1 ? this.#preferred! : this.#order!.routes[admission.credential]!)
  }

  #admissionFailed (err: unknown): void {
    if (this.#context!.failOpen) {
      this.#deps.logger.warn({ request_id: this.requestId, key_id: this.#context!.keyId, err: errorSummary(err) }, 'limits store unavailable; policy fails open, forwarding unmetered')
      return this.#forward(this.#preferred!)
    }
    this.#governanceFailed(err)
  }

  #forward (credential: CredentialRoute): void {
    const facts = this.#facts
    facts.credentialId = credential.id
    facts.attempts = 1
    facts.dispatched = performance.now()
    const upstream = this.#upstream!
    const method = this.#req.method!
    const req = this.#req
    const raw = req.rawHeaders
    const headers: string[] = []
    copyRequestHeaders(raw, upstream.credentialHeader, connectionTokens(raw), headers)
    if (credential.headerName !== null) headers.push(credential.headerName, credential.headerValue)

    let query = this.#query
    if (credential.queryPair !== null) {
      query = withoutQueryParam(query, upstream.credentialQueryParam!)
      query = query === '' ? credential.queryPair : query + '&' + credential.queryPair
    }
    const path = upstream.basePath + '/' + this.#path!.raw + (query === '' ? '' : '?' + query)

    const res = this.#res
    res.on('close', onResponseClose)
    upstream.pool.dispatch({
      method: method as Dispatcher.HttpMethod,
      path,
      headers,
      body: this.#hasBody ? req : null,
      headersTimeout: upstream.requestTimeoutMs,
      bodyTimeout: upstream.requestTimeoutMs,
    }, this)
  }

  // undici dispatch handler (legacy API: raw Buffer headers, boolean backpressure)

  onConnect (abort: (err?: Error) => void): void {
    this.#abort = abort
    if (this.#res.destroyed) abort()
  }

  /** undici 7 passes the chunk itself, though its types say a size: accept both */
  onBodySent (chunk: Buffer | string | number): void {
    this.#facts.bytesIn += typeof chunk === 'number' ? chunk : chunk.length
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true // 1xx: the final answer is still to come
    this.#resume = resume
    const facts = this.#facts
    facts.status = statusCode
    facts.upstreamLatencyMs = performance.now() - facts.dispatched
    this.#deps.metrics.upstreamResponded(facts.partner, statusCode, facts.upstreamLatencyMs / 1000)
    if (statusCode >= 500) this.#refund()
    const res = this.#res
    const headers = responseHeaders(rawHeaders, this.requestId, this.#upstream!.credentialQueryParam)
    pushRateLimitHeaders(headers, this.#context!.limits.policyHeader, this.#limitState)
    if (statusText !== '') res.writeHead(statusCode, statusText, headers)
    else res.writeHead(statusCode, headers)
    return true
  }

  onData (chunk: Buffer): boolean {
    this.#facts.bytesOut += chunk.length
    const res = this.#res
    if (res.write(chunk)) return true
    res.once('drain', onResponseDrain)
    return false
  }

  onComplete (): void {
    this.#settled = true
    this.#res.end()
    this.#facts.outcome = 'forwarded'
    this.#report()
  }

  onError (err: Error): void {
    if (this.#settled) return
    this.#settled = true
    const res = this.#res
    if (!res.headersSent) this.#refund() // no response from the upstream: the units go back
    if (res.destroyed) {
      // the client left (possibly before the dispatch, while limits were decided); undici is
      // telling us it stopped too. The request still gets its audit event.
      if (!res.headersSent) {
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
      this.#deps.logger.warn({ request_id: this.requestId, err: errorSummary(err) }, 'upstream failed mid-response')
      res.destroy()
      this.#facts.outcome = 'forwarded'
      this.#report()
      return
    }
    const code = upstreamErrorCode(err)
    this.#deps.logger.warn({ request_id: this.requestId, key_id: this.#context?.keyId, partner: this.#partnerSlug, err: errorSummary(err) }, 'upstream request failed')
    this.#refuse(code, code === 'upstream_timeout' ? 'the partner did not answer in time' : 'the partner connection failed')
  }

  onUpgrade (): void {
    this.#abort?.(new Error('upgrade not supported'))
  }

  /** response writable again: let undici read from the upstream socket */
  resume (): void {
    this.#resume?.()
  }

  /** the client went away (or the response finished) */
  clientClosed (): void {
    if (this.#settled) return
    this.#settled = true
    this.#abort?.()
    const facts = this.#facts
    if (!this.#res.headersSent) {
      this.#refund() // no response was given: the units go back

      facts.status = 499
      facts.outcome = 'client_closed'
    } else {
      facts.outcome = 'forwarded'
    }
    this.#report()
  }

  #refuse (code: ErrorCode, message: string, headers?: string[]): void {
    const facts = this.#facts
    facts.status = statusOf(code)
    facts.outcome = code
    facts.bytesOut = sendError(this.#res, code, message, this.requestId, headers)
    this.#report()
  }

  #report (): void {
    if (this.#reported) return
    this.#reported = true
    this.#deps.reporter.report(this.#facts)
  }

  #refund (): void {
    const reservation = this.#reservation
    if (reservation === null) return
    this.#reservation = null
    this.#facts.cost = 0
    this.#deps.admission.refund(reservation).catch(logRefundFailure.bind(this.#deps.logger))
  }

  #governanceFailed (err: unknown): void {
    this.#deps.logger.error({ request_id: this.requestId, err: errorSummary(err) }, 'control-plane store failed')
    this.#refuse('governance_unavailable', 'a store needed for this decision did not answer')
  }
}

function onResponseDrain (this: ExchangeResponse): void {
  this[kExchange]?.resume()
}

function onResponseClose (this: ExchangeResponse): void {
  this[kExchange]?.clientClosed()
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
      return 'upstream_timeout'
    default:
      return 'upstream_error'
  }
}

/** error class and code only: messages can quote URLs, and URLs can hold query secrets */
function errorSummary (err: unknown): { type: string; code?: string } {
  if (err instanceof Error) return { type: err.name, code: (err as { code?: string }).code }
  return { type: typeof err }
}
