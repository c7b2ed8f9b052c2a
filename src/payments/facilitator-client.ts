// Talks to x402 facilitators: POST /verify and /settle, GET /supported (x402 facilitator API).
// Failure rules (docs/payments.md): a facilitator that is down, slow, redirects, or answers anything
// but the expected JSON is "facilitator failed" (502), never a free pass. /verify only reads,
// so it is retried on connection errors and 5xx; /settle moves money and is never retried.
//
// Never logged: payment headers, payloads, and facilitator paths (they may carry an API key);
// failures are logged with the facilitator's origin only.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { Agent, request, type Dispatcher } from 'undici'
import type { CompiledPayment } from './compile-payment.js'
import {
  failed, settleOutcome, supportsKind, verifyOutcome, type FacilitatorFailed, type SettleOutcome, type VerifyOutcome,
} from './facilitator-answers.js'
import type { AcceptedPayment } from './read-payment.js'

export interface FacilitatorClientOptions {
  logger: Logger
  /** shared connection pool; by default the client makes its own, closed by close() */
  dispatcher?: Dispatcher
  /** own dispatcher only (undici fixes it per Agent); default 2000 */
  connectTimeoutMs?: number
  /** for one /verify attempt, answer and body; default 5000 */
  verifyTimeoutMs?: number
  /** for /settle, answer and body: settling waits for the chain; default 30000 */
  settleTimeoutMs?: number
  /** extra /verify attempts after a connection error or 5xx; default 2 */
  verifyRetries?: number
  /** before the first retry, doubling after; default 100 */
  retryDelayMs?: number
}

export type SupportedCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string }

/** a facilitator answer worth reading, or why there is none */
type Exchange =
  | { readonly ok: true; readonly status: number; readonly json: unknown }
  | { readonly ok: false; readonly retry: boolean; readonly reason: string }

const MAX_ANSWER_BYTES = 64 * 1024
const SUPPORTED_TIMEOUT_MS = 10_000
// connection never made, or lost before an answer: nothing was verified, asking again is safe
const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET',
])
const POST_HEADERS = { 'content-type': 'application/json', accept: 'application/json' }
const GET_HEADERS = { accept: 'application/json' }
// the deadline below, and undici's own timeouts should they ever come first
const TIMEOUTS = new Set(['TimeoutError', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

export class FacilitatorClient {
  readonly #logger: Logger
  readonly #dispatcher: Dispatcher
  readonly #ownsDispatcher: boolean
  readonly #verifyTimeoutMs: number
  readonly #settleTimeoutMs: number
  readonly #verifyRetries: number
  readonly #retryDelayMs: number

  constructor (options: FacilitatorClientOptions) {
    this.#logger = options.logger
    this.#ownsDispatcher = options.dispatcher === undefined
    this.#dispatcher = options.dispatcher ?? new Agent({ connect: { timeout: options.connectTimeoutMs ?? 2000 } })
    this.#verifyTimeoutMs = options.verifyTimeoutMs ?? 5000
    this.#settleTimeoutMs = options.settleTimeoutMs ?? 30_000
    this.#verifyRetries = options.verifyRetries ?? 2
    this.#retryDelayMs = options.retryDelayMs ?? 100
  }

  /** Is the payment good for its requirement? Call after the replay claim, before forwarding. */
  async verify (payment: AcceptedPayment): Promise<VerifyOutcome> {
    const body = exchangeBody(payment)
    let exchange = await this.#post(payment.facilitator, '/verify', body, this.#verifyTimeoutMs)
    for (let retry = 0; !exchange.ok && exchange.retry && retry < this.#verifyRetries; retry++) {
      await sleep(this.#retryDelayMs * 2 ** retry)
      exchange = await this.#post(payment.facilitator, '/verify', body, this.#verifyTimeoutMs)
    }
    if (!exchange.ok) return this.#failed(payment.facilitator, '/verify', exchange.reason)
    const outcome = verifyOutcome(exchange.status, exchange.json)
    if (!outcome.ok && outcome.code === 'facilitator_failed') this.#warn(payment.facilitator, '/verify', outcome.reason)
    return outcome
  }

  /**
   * Collects the payment. Call once, only after the upstream answered below 400 and before any
   * response byte reaches the client.
   */
  async settle (payment: AcceptedPayment): Promise<SettleOutcome> {
    const exchange = await this.#post(payment.facilitator, '/settle', exchangeBody(payment), this.#settleTimeoutMs)
    // no answer: the transfer may or may not be on chain; the claim stays, so it is not tried twice
    if (!exchange.ok) return this.#failed(payment.facilitator, '/settle', exchange.reason)
    const outcome = settleOutcome(exchange.status, exchange.json, payment.requirements.network)
    if (!outcome.ok && outcome.code === 'facilitator_failed') this.#warn(payment.facilitator, '/settle', outcome.reason)
    return outcome
  }

  /**
   * Start-up check: does the policy's facilitator answer /supported and list the policy's
   * scheme and network for x402 v2? Logs a warning when not; never throws.
   */
  async checkSupported (payment: CompiledPayment): Promise<SupportedCheck> {
    const { scheme, network } = payment.settings
    let exchange: Exchange
    try {
      exchange = await this.#exchange(payment.facilitator, '/supported', 'GET', null, SUPPORTED_TIMEOUT_MS)
    } catch (err) {
      exchange = { ok: false, retry: false, reason: errorReason(err, SUPPORTED_TIMEOUT_MS) }
    }
    let reason: string | null = null
    if (!exchange.ok) {
      reason = exchange.reason
    } else {
      const supported = exchange.status < 300 ? supportsKind(exchange.json, scheme, network) : undefined
      if (supported === undefined) reason = `/supported answered ${exchange.status} without a SupportedResponse`
      else if (!supported) reason = `does not list scheme ${scheme} on ${network} for x402 v2`
    }
    if (reason === null) return { ok: true }
    this.#logger.warn({ facilitator: origin(payment.facilitator), scheme, network, reason }, 'x402 facilitator check failed; payments on this policy may be refused')
    return { ok: false, reason }
  }

  async close (): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher.close()
  }

  async #post (base: string, path: string, body: string, timeoutMs: number): Promise<Exchange> {
    try {
      return await this.#exchange(base, path, 'POST', body, timeoutMs)
    } catch (err) {
      return { ok: false, retry: isConnectionError(err), reason: errorReason(err, timeoutMs) }
    }
  }

  /**
   * One request under one deadline for the whole answer, body included: a facilitator that
   * trickles bytes is as slow as one that sends none. Throws what undici throws.
   */
  async #exchange (base: string, path: string, method: 'GET' | 'POST', body: string | null, timeoutMs: number): Promise<Exchange> {
    const res = await request(base + path, {
      method,
      headers: body === null ? GET_HEADERS : POST_HEADERS,
      body,
      dispatcher: this.#dispatcher,
      signal: AbortSignal.timeout(timeoutMs),
    })
    const status = res.statusCode
    // undici does not follow redirects: a 3xx is an answer, and not one we can use
    if (status >= 300 && status < 400) {
      await res.body.dump()
      return { ok: false, retry: false, reason: `answered ${status}` }
    }
    const chunks: Buffer[] = []
    let bytes = 0
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      bytes += chunk.length
      if (bytes > MAX_ANSWER_BYTES) {
        res.body.destroy()
        return { ok: false, retry: false, reason: `answered more than ${MAX_ANSWER_BYTES} bytes` }
      }
      chunks.push(chunk)
    }
    if (status >= 500) return { ok: false, retry: true, reason: `answered ${status}` }
    try {
      return { ok: true, status, json: JSON.parse(Buffer.concat(chunks, bytes).toString('utf8')) }
    } catch {
      return { ok: false, retry: false, reason: `answered ${status} with a body that is not JSON` }
    }
  }

  #failed (base: string, path: string, reason: string): FacilitatorFailed {
    const outcome = failed(`${path} ${reason}`)
    this.#warn(base, path, outcome.reason)
    return outcome
  }

  #warn (base: string, path: string, reason: string): void {
    this.#logger.warn({ facilitator: origin(base), call: path, reason }, 'x402 facilitator failed')
  }
}

/** the facilitator API's request body, for /verify and /settle alike */
function exchangeBody (payment: AcceptedPayment): string {
  return JSON.stringify({ x402Version: payment.version, paymentPayload: payment.payload, paymentRequirements: payment.requirements })
}

function isConnectionError (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && CONNECTION_ERRORS.has(code)
}

function errorReason (err: unknown, timeoutMs: number): string {
  const { code, name } = (err ?? {}) as { code?: unknown; name?: unknown }
  if (TIMEOUTS.has(String(name)) || TIMEOUTS.has(String(code))) return `too slow (no answer within ${timeoutMs} ms)`
  return typeof code === 'string' ? `unreachable (${code})` : 'unreachable'
}

function origin (base: string): string {
  return new URL(base).origin
}
