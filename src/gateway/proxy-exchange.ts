// One proxied request from arrival to the last response byte: authenticate, apply the key's
// policy, pick a credential, forward through the partner's Pool and stream the answer back.
//
// HOT PATH. The exchange is the undici dispatch handler itself (legacy raw-header API, which
// undici's core calls without an adapter), its steps are prototype methods, and the response
// listeners are module-level functions that find the exchange on the response object, so a
// request allocates this object and its header arrays but no closures. Only a key-cache miss
// goes through a promise.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Dispatcher } from 'undici'
import type { Logger } from 'pino'
import type { ErrorCode } from '../errors.js'
import { checkProxyPath, withoutQueryParam, type CheckedPath } from './proxy-path.js'
import { connectionTokens, copyRequestHeaders, responseHeaders } from './header-rules.js'
import { findEndpoint } from './endpoint-pattern.js'
import { sendError } from './respond.js'
import type { KeyContext, UpstreamTarget } from './key-context.js'
import type { KeyResolver } from './key-resolver.js'
import type { PartnerDirectory } from './partner-directory.js'

export interface ExchangeDeps {
  keys: KeyResolver
  partners: PartnerDirectory
  logger: Logger
}

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
  /** the upstream finished or failed; nothing more may happen */
  #settled = false

  constructor (deps: ExchangeDeps, req: IncomingMessage, res: ServerResponse, requestId: string) {
    this.#deps = deps
    this.#req = req
    this.#res = res
    this.requestId = requestId
    this.#res[kExchange] = this
  }

  /** `rest` is the raw path after `/proxy/{partner}/`; `query` excludes the '?' */
  start (partnerSlug: string, rest: string, query: string): void {
    this.#partnerSlug = partnerSlug
    this.#query = query
    this.#path = checkProxyPath(rest)
    if (this.#path === null) return this.#refuse('invalid_path', 'the path must stay under the partner\'s base URL')

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
    if (context.revoked) return this.#refuse('key_revoked', 'this virtual key has been revoked')
    const now = Date.now()
    if (context.expiresAt <= now) return this.#refuse('key_expired', 'this virtual key has expired')
    if (context.hashExpiresAt <= now) return this.#refuse('key_expired', 'this virtual key was rotated and its grace period is over')
    this.#context = context

    const route = context.routes.get(this.#partnerSlug)
    if (route === undefined) {
      this.#deps.partners.exists(this.#partnerSlug).then(
        (exists) => exists
          ? this.#refuse('partner_not_allowed', `this key's policy has no binding to partner ${this.#partnerSlug}`)
          : this.#refuse('unknown_partner', `no partner ${this.#partnerSlug}`),
        (err: unknown) => this.#governanceFailed(err),
      )
      return
    }
    const upstream = route.upstream
    if (upstream === null) {
      return this.#refuse('environment_not_allowed', `partner ${route.slug} has no base URL or credential for environment ${context.environment}`)
    }
    const method = this.#req.method!
    const allow = context.policy.allow
    if (allow !== null && findEndpoint(allow, method, this.#path!.match) === -1) {
      return this.#refuse('endpoint_not_allowed', `${method} ${this.#path!.match} is not allowed by policy ${context.policy.name}`)
    }
    this.#forward(upstream, method)
  }

  #forward (upstream: UpstreamTarget, method: string): void {
    const credential = upstream.credentials.next()!
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

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true // 1xx: the final answer is still to come
    this.#resume = resume
    const res = this.#res
    if (statusText !== '') res.writeHead(statusCode, statusText, responseHeaders(rawHeaders, this.requestId))
    else res.writeHead(statusCode, responseHeaders(rawHeaders, this.requestId))
    return true
  }

  onData (chunk: Buffer): boolean {
    const res = this.#res
    if (res.write(chunk)) return true
    res.once('drain', onResponseDrain)
    return false
  }

  onComplete (): void {
    this.#settled = true
    this.#res.end()
  }

  onError (err: Error): void {
    if (this.#settled) return
    this.#settled = true
    const res = this.#res
    if (res.destroyed) return // the client left; undici is telling us it stopped too
    if (res.headersSent) {
      // mid-body: the only honest signal left is a broken response
      this.#deps.logger.warn({ request_id: this.requestId, err: errorSummary(err) }, 'upstream failed mid-response')
      res.destroy()
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
  }

  #refuse (code: ErrorCode, message: string): void {
    sendError(this.#res, code, message, this.requestId)
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
