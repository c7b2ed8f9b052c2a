// The admin (control-plane) HTTP server: bearer auth, JSON bodies within a limit, routing to
// the resource handlers, and one place that turns outcomes and errors into responses.
import { randomUUID } from 'node:crypto'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { ConflictError, GovernanceUnavailableError, RelayKeyError, ValidationError, errorBody, statusOf } from '../errors.js'
import { EgressPolicy } from '../http/egress-policy.js'
import { Router, decodeParam } from '../http/router.js'
import type { InvalidationPublisher } from '../store/invalidation.js'
import { answerWithin } from '../store/answer-within.js'
import type { ControlStore } from '../store/control-store.js'
import { isStoreUnavailable, storeErrorCode } from '../store/store-unavailable.js'
import { AdminTokens } from './bearer-auth.js'
import type { AdminTokenSpec } from '../config/admin-tokens.js'
import { ChangeRecorder } from './change-recorder.js'
import { registerChangeRoutes } from './routes/changes.js'
import { readJsonBody } from './json-body.js'
import { NO_NUL } from '../validation/json-value.js'
import { LoggedPublisher } from './logged-publisher.js'
import { refuse, type AdminHandler, type AdminReply } from './reply.js'
import type { KeyIssuer, SecretSealer } from './route-deps.js'
import { registerBindingRoutes } from './routes/bindings.js'
import { registerCredentialRoutes } from './routes/credentials.js'
import { registerKeyRoutes } from './routes/keys.js'
import { registerPartnerRoutes } from './routes/partners.js'
import { registerPolicyRoutes } from './routes/policies.js'
import { registerSystemRoutes, type ReadinessReport } from './routes/system.js'
import { registerAuditRoutes } from './routes/audit.js'
import { registerUsageRoutes, type UsageRouteDeps } from './routes/usage.js'

export interface AdminDeps {
  store: ControlStore
  codec: KeyIssuer
  /** null without RELAYKEY_MASTER_KEY: inline secrets are then refused with a 400 */
  cipher: SecretSealer | null
  /** RELAYKEY_SECRET_FILES_DIR; null (default): file secrets are refused */
  secretFilesDir?: string | null
  /** default: no allow list (link-local and metadata addresses refused) */
  egress?: EgressPolicy
  invalidations: InvalidationPublisher
  /** every accepted bearer token, named, each read or write */
  tokens: readonly AdminTokenSpec[]
  logger: Logger
  /** Prometheus text for GET /metrics; without it /metrics is 404 */
  metrics?: () => Promise<string>
  /** GET /ready: stores and configuration problems; without it /ready is 404 */
  readiness?: () => Promise<ReadinessReport>
  /** clock in epoch milliseconds, for key status, expiry and rotation grace; default Date.now */
  now?: () => number
  /** request body limit in bytes; default 1 MiB */
  bodyLimit?: number
  /** how long a call waits for the stores before 503 governance_unavailable; default 15 s */
  timeoutMs?: number
  /** the audit table and the limits store, for /admin/usage and /admin/audit */
  usage?: Omit<UsageRouteDeps, 'store' | 'now'>
}

const DEFAULT_BODY_LIMIT = 1024 * 1024
const DEFAULT_TIMEOUT_MS = 15_000

/**
 * Every request, /admin/health and /metrics included, needs the bearer token (docs/admin-api.md:
 * "on every call"), and it is checked before routing, so unauthenticated callers cannot map
 * which routes exist.
 */
export function createAdminServer (deps: AdminDeps): http.Server {
  const app = new AdminApp(deps)
  return http.createServer(app.listener)
}

class AdminApp {
  readonly listener: (req: IncomingMessage, res: ServerResponse) => void
  readonly #router: Router<AdminHandler>
  readonly #tokens: AdminTokens
  readonly #logger: Logger
  readonly #bodyLimit: number
  readonly #timeoutMs: number
  readonly #timeoutMessage: string

  constructor (deps: AdminDeps) {
    this.#tokens = new AdminTokens(deps.tokens)
    this.#logger = deps.logger
    this.#bodyLimit = deps.bodyLimit ?? DEFAULT_BODY_LIMIT
    this.#timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.#timeoutMessage = `the stores did not answer within ${this.#timeoutMs} ms`
    this.#router = new Router<AdminHandler>()
    const routeDeps = {
      store: deps.store,
      codec: deps.codec,
      cipher: deps.cipher,
      secretFilesDir: deps.secretFilesDir ?? null,
      egress: deps.egress ?? new EgressPolicy(null),
      invalidations: new LoggedPublisher(deps.invalidations, deps.logger),
      changes: new ChangeRecorder(deps.store),
      now: deps.now ?? Date.now,
    }
    registerSystemRoutes(this.#router, deps.metrics ?? null, deps.readiness ?? null)
    registerPartnerRoutes(this.#router, routeDeps)
    registerCredentialRoutes(this.#router, routeDeps)
    registerPolicyRoutes(this.#router, routeDeps)
    registerBindingRoutes(this.#router, routeDeps)
    registerKeyRoutes(this.#router, routeDeps)
    registerChangeRoutes(this.#router, deps.store)
    if (deps.usage !== undefined) {
      registerUsageRoutes(this.#router, { ...deps.usage, store: deps.store, now: routeDeps.now })
      registerAuditRoutes(this.#router, deps.usage.audit)
    }
    this.listener = (req, res) => {
      this.#serve(req, res).catch((err: unknown) => { this.#lastResort(err, res) })
    }
  }

  // Only reached if writing the response itself failed; without it the rejection would end the process.
  #lastResort (err: unknown, res: ServerResponse): void {
    const e = err instanceof Error ? err : new Error(String(err))
    this.#logger.error({ err: { type: e.name, message: e.message, stack: e.stack } }, 'admin: writing a response failed')
    res.destroy()
  }

  async #serve (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now()
    const requestId = randomUUID()
    const method = req.method ?? 'GET'
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    res.setHeader('X-RelayKey-Request-Id', requestId)
    // Responses carry raw keys and configuration: no cache may keep them.
    res.setHeader('Cache-Control', 'no-store')

    let reply: AdminReply
    try {
      reply = await this.#dispatch(req, res, method, path, q === -1 ? '' : url.slice(q + 1), requestId)
    } catch (err) {
      if (res.destroyed) {
        this.#logger.debug({ request_id: requestId, method, path }, 'admin request: client went away')
        return
      }
      reply = this.#fromError(err, requestId, method, path)
    }
    const status = send(res, reply, requestId, method)
    // Method, path and status only: bodies and headers may carry secrets and keys.
    this.#logger.info({ request_id: requestId, method, path, status, ms: Math.round(performance.now() - started) }, 'admin request')
  }

  async #dispatch (req: IncomingMessage, res: ServerResponse, method: string, path: string, rawQuery: string, requestId: string): Promise<AdminReply> {
    const caller = this.#tokens.identify(req.headers.authorization)
    if (caller === null) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="relaykey-admin"')
      return refuse('unauthorized', 'Authorization: Bearer <RELAYKEY_ADMIN_TOKEN> is required')
    }

    const match = this.#router.find(method, path)
    if (match === null) {
      const allowed = this.#router.allowedMethods(path)
      if (allowed.length === 0) return refuse('not_found', 'no such admin route')
      res.setHeader('Allow', allowed.join(', '))
      return refuse('method_not_allowed', `${method} is not allowed here; use ${allowed.join(', ')}`)
    }
    // before the body is read: a read token's mutation is refused whatever it would have changed
    if (!isRead(method) && caller.scope !== 'write') {
      return refuse('forbidden', `token ${caller.name} may only read (scope read); ${method} changes state and needs a write token`)
    }
    const params: string[] = []
    for (let i = 0; i < match.params.length; i++) {
      const value = decodeParam(match.params[i])
      if (value === null) return refuse('invalid_request', `${match.paramNames[i]}: malformed percent-encoding in the path`)
      if (value.includes('\u0000')) return refuse('invalid_request', `${match.paramNames[i]}: ${NO_NUL}`)
      params.push(value)
    }

    const body = await readJsonBody(req, this.#bodyLimit)
    if (!body.ok) {
      // The rest of an oversized body is not worth reading: close the connection behind the reply.
      if (body.code === 'payload_too_large') res.setHeader('Connection', 'close')
      return refuse(body.code, body.message)
    }
    // a store that stops answering without closing anything would otherwise hold the call for
    // as long as TCP keeps the connection
    return await answerWithin(match.handler({ params, query: new URLSearchParams(rawQuery), body: body.value, caller, requestId }), this.#timeoutMs, this.#timeoutMessage)
  }

  #fromError (err: unknown, requestId: string, method: string, path: string): AdminReply {
    if (err instanceof ValidationError) return refuse('invalid_request', err.message)
    if (err instanceof ConflictError) {
      return refuse('conflict', err.message.startsWith(`${err.field}:`) ? err.message : `${err.field}: ${err.message}`)
    }
    if (err instanceof RelayKeyError && statusOf(err.code) < 500) return refuse(err.code, err.message)
    // Name, message and stack only: driver errors can carry query parameters (digests, ciphertext).
    const e = err instanceof Error ? err : new Error(String(err))
    this.#logger.error({ request_id: requestId, method, path, err: { type: e.name, message: e.message, stack: e.stack } }, 'admin request failed')
    // A write may have reached the store before it stopped answering, and may still apply.
    const maybeApplied = isRead(method) ? '' : '; the change may still have been applied: read it back before retrying'
    if (err instanceof GovernanceUnavailableError) return refuse(err.code, err.message + maybeApplied)
    if (isStoreUnavailable(err)) return refuse('governance_unavailable', `the control store is unavailable (${storeErrorCode(err)})${maybeApplied}`)
    if (err instanceof RelayKeyError) return refuse(err.code, err.message)
    return refuse('internal_error', `internal error; the server log has the details under request id ${requestId}`)
  }
}

/** a call that changes nothing, so it may be retried as it is */
function isRead (method: string): boolean {
  return method === 'GET' || method === 'HEAD'
}

/** Writes `reply` and returns the status sent. */
function send (res: ServerResponse, reply: AdminReply, requestId: string, method: string): number {
  let status: number
  let payload: string | null
  switch (reply.kind) {
    case 'json':
      status = reply.status
      payload = JSON.stringify(reply.body)
      res.setHeader('Content-Type', 'application/json; charset=utf-8')
      break
    case 'text':
      status = reply.status
      payload = reply.body
      res.setHeader('Content-Type', reply.contentType)
      break
    case 'empty':
      status = reply.status
      payload = null
      break
    case 'error':
      status = statusOf(reply.code)
      payload = errorBody(reply.code, reply.message, requestId)
      res.setHeader('Content-Type', 'application/json; charset=utf-8')
      // a store that did not answer is usually back within seconds; not on a write, which may
      // have been applied and must be read back, not retried blindly
      if (status === 503 && isRead(method)) res.setHeader('Retry-After', '1')
      break
  }
  res.statusCode = status
  if (payload === null) {
    res.end()
  } else {
    res.setHeader('Content-Length', Buffer.byteLength(payload))
    res.end(payload)
  }
  return status
}
