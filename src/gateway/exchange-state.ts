// The state one proxied request carries from arrival to its last response byte, shared by the
// steps that move it along (exchange-*.ts, in the order docs/architecture.md tells): ProxyExchange
// (proxy-exchange.ts) is this state with the order of the steps. The fields are plain properties
// because the steps are functions in other files; nothing outside src/gateway/ reads them.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { GatewayMetrics } from '../telemetry/gateway-metrics.js'
import { ExchangeFacts, type ExchangeReporter } from './exchange-report.js'
import type { CheckedPath } from './proxy-path.js'
import type { CredentialOrder, CredentialRoute, KeyContext, UpstreamTarget } from './key-context.js'
import type { Admission, AdmissionRequest, AdmissionStore, LimitState, Reservation } from '../limits/admission.js'
import type { InFlightCounts } from '../limits/in-flight-counts.js'
import type { KeyResolver } from './key-resolver.js'
import type { PartnerDirectory } from './partner-directory.js'
import type { PaymentServices } from '../payments/payment-services.js'
import type { PaidExchange } from './paid-exchange.js'
import type { SettleOutcome } from '../payments/facilitator-answers.js'
import type { SignedBodyMemory } from '../partner-auth/signed-body-memory.js'

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

/** the exchange answering a response (or reading a request's body), found by its listeners */
export const kExchange = Symbol('relaykey.exchange')
export type ExchangeResponse = ServerResponse & { [kExchange]?: ExchangeState }
export type ExchangeRequest = IncomingMessage & { [kExchange]?: ExchangeState }
/** exchanges whose responses wait behind another on the same connection */
export const kQueued = Symbol('relaykey.queued')
export type ClientSocket = Socket & { [kQueued]?: Set<ExchangeState> }

/** which breakers' probe slot the current attempt holds */
export const PROBE_PARTNER = 1
export const PROBE_CREDENTIAL = 2

export type RetryReason = 'connection' | 'status' | 'credential_rejected' | 'token_refresh'

/** how the answer ends once the audit event is in the log */
export const enum Finish { None, End, Json, Raw }

/** a store that did not answer, or a partner's full concurrency cap, is usually free again within seconds (RFC 9110 §10.2.3) */
export const RETRY_SOON = ['retry-after', '1']

export abstract class ExchangeState {
  readonly deps: ExchangeDeps
  readonly req: ExchangeRequest
  /** the client's connection; undici clears req.socket once it has read the body */
  readonly socket: ClientSocket
  readonly res: ExchangeResponse
  readonly requestId: string
  partnerSlug = ''
  query = ''
  path: CheckedPath | null = null
  context: KeyContext | null = null
  abort: ((err?: Error) => void) | null = null
  resume: (() => void) | null = null
  hasBody = false
  /** the client's Content-Length, -1 when absent (chunked or no body) */
  contentLength = -1
  idempotencyKey = false
  /** the client's Host, for the x402 resource URL */
  host = ''
  paymentSignature: string | undefined = undefined
  xPayment: string | undefined = undefined
  /** x402: only for requests a paid policy charges for */
  paid: PaidExchange | null = null
  upstream: UpstreamTarget | null = null
  groups: { readonly owner: string; readonly partner: string } | null = null
  /** ids of the credentials whose vendor quota this request has spent (quota partners only) */
  quotaSpent: string[] | null = null
  preferred: CredentialRoute | null = null
  order: CredentialOrder | null = null
  limitState: LimitState | null = null
  reservation: Reservation | null = null
  /** the credential of the current attempt (the admitted one until the first is sent) */
  credential: CredentialRoute | null = null
  /** what each attempt sends: the client's stream (sent once), a buffered copy, or nothing */
  body: IncomingMessage | Buffer | null = null
  bodyChunks: Buffer[] | null = null
  bodyBytes = 0
  /** bytes of this request's body counted in deps.signedBodies, given back at report */
  signedBytesHeld = 0
  /** a signed body is read whole up to this many bytes (UpstreamTarget.signedBodyLimit); -1: no bound here */
  bodyLimit = -1
  /** the current attempt's headers, kept when a signer made them (a 401 says which token failed) */
  signedHeaders: string[] | null = null
  /** a 401 already had its access token refreshed and the request sent once more */
  tokenRefreshed = false
  /** the next attempt waits for its signer (an OAuth2 access token being fetched) */
  waitingForSigner = false
  /** the request may be sent more than once */
  replayable = false
  attempt = 0
  /** performance.now() after which no attempt starts and the last one times out */
  deadline = 0
  probes = 0
  inGate = false
  /** the current attempt's response is being drained because a retry follows */
  discarding = false
  retryDelayMs = 0
  retryReason: RetryReason = 'connection'
  retryTimer: NodeJS.Timeout | null = null
  /** armed while the client is not reading what the partner sends */
  stallTimer: NodeJS.Timeout | null = null
  /**
   * request_ms, precisely, once a retry is in play (a drain or a later attempt): undici's
   * headersTimeout runs on a coarse (~0.5 s) timer wheel and knows nothing of drains
   */
  deadlineTimer: NodeJS.Timeout | null = null
  /** the deadline passed while an attempt waited for a connection: abort it once it has one */
  deadlinePassed = false
  /** the current attempt's headers arrived (the breakers were told) */
  answered = false
  /**
   * an attempt's request head may have reached the partner (undici took a connection for it and
   * was not stopped) and the partner has not answered it with a 5xx: the request is then
   * charged even if its client leaves
   */
  reached = false
  /** the key's and the customer's max_in_flight slots this request holds (enterKeySlots) */
  keySlot: string | null = null
  customerSlot: string | null = null
  /** an answer's head was a success; the partner's breaker hears so at the end (report) */
  partnerSucceeding = false
  /** bytes of a retried attempt's answer drained so far */
  drained = 0
  /** the upstream finished or failed; nothing more may happen */
  settled = false
  reported = false
  /**
   * What ends the answer once the audit event is in the local log (auditLogged): nothing, a
   * res.end() (with heldChunk, the body's last bytes held back), or a JSON answer of RelayKey's
   */
  finish: Finish = Finish.None
  heldChunk: Buffer | null = null
  jsonStatus = 0
  jsonBody = ''
  /** a whole HTTP response for the socket itself (Finish.Raw) */
  rawAnswer = ''
  /** the request passed its checks and its body is being read or sent (send) */
  sending = false
  /** the body broke framing while the request was still being decided: send answers 400 */
  bodyBroken = false
  jsonHeaders: string[] | undefined = undefined
  /** the partner answer's Content-Length, -1 without one: its last bytes wait for the audit log */
  answerLength = -1
  /**
   * `Expect: 100-continue`: the client holds its body back until told to go on, which it is
   * only once its key, policy, limits and payment have let the request through (send)
   */
  expectsContinue = false
  readonly facts: ExchangeFacts

  constructor (deps: ExchangeDeps, req: IncomingMessage, res: ServerResponse, requestId: string) {
    this.deps = deps
    this.req = req
    this.res = res
    this.socket = req.socket
    this.requestId = requestId
    this.facts = new ExchangeFacts(requestId, req.method!)
    this.res[kExchange] = this
  }

  // the steps that hand the request on to a later one in the order (the steps' files import
  // only earlier ones; ProxyExchange implements these with the later step's function)
  /** the next attempt (exchange-attempts.ts) */
  abstract attemptNow (): void
  /** a paid answer too large to hold (exchange-payment.ts) */
  abstract paidAnswerTooLarge (): void
  /** the payment for a held answer settled, or not (exchange-payment.ts) */
  abstract settlementDone (outcome: SettleOutcome): void
  /** 429 for a spent limit, budget or quota (exchange-admission.ts) */
  abstract limitRefused (refusal: Extract<Admission, { ok: false }>, state: LimitState | null): void
  /** the audit event is in the local log: the answer may end (ExchangeReporter calls it) */
  abstract auditLogged (): void
}

export function clearStall (x: ExchangeState): void {
  if (x.stallTimer === null) return
  clearTimeout(x.stallTimer)
  x.stallTimer = null
}

export function clearDeadline (x: ExchangeState): void {
  if (x.deadlineTimer === null) return
  clearTimeout(x.deadlineTimer)
  x.deadlineTimer = null
}

export function releaseProbes (x: ExchangeState): void {
  const probes = x.probes
  if (probes === 0) return
  x.probes = 0
  if ((probes & PROBE_PARTNER) !== 0) x.upstream!.breaker.releaseProbe()
  if ((probes & PROBE_CREDENTIAL) !== 0) x.credential!.breaker.releaseProbe()
}

export function giveBackSignedBody (x: ExchangeState): void {
  if (x.signedBytesHeld === 0) return
  x.deps.signedBodies.give(x.signedBytesHeld)
  x.signedBytesHeld = 0
  x.body = null
}
