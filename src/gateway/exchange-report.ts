// What happened to one request, reported once when it is over: an audit event, metrics and
// an access-log line, all from the same facts so they always agree.
import { randomUUID } from 'node:crypto'
import { auditPaymentAmount, type AuditRecorder, type AuditWaiter } from '../audit/audit-event.js'
import type { GatewayMetrics } from '../telemetry/gateway-metrics.js'
import type { AccessLog } from '../telemetry/access-log.js'
import type { KeyContext } from './key-context.js'

/** Filled in by ProxyExchange as the request moves along. */
export class ExchangeFacts {
  readonly ts = Date.now()
  readonly started = performance.now()
  readonly requestId: string
  readonly method: string
  /** '/' + the client's path after the partner, no query */
  path = ''
  /** a real partner's slug once known, '-' before (metric labels stay bounded) */
  partner = '-'
  /** the slug the client asked for, for the audit event */
  requestedPartner = ''
  context: KeyContext | null = null
  credentialId: string | null = null
  status = 0
  outcome = ''
  attempts = 0
  dispatched = 0
  upstreamLatencyMs: number | null = null
  cost = 0
  bytesIn = 0
  bytesOut = 0
  paymentTx: string | null = null
  /** the price paid in x402 atomic units, a decimal string (set with paymentTx) */
  paymentAmount: string | null = null

  constructor (requestId: string, method: string) {
    this.requestId = requestId
    this.method = method
  }
}

export class ExchangeReporter {
  /** null only when audit is switched off for a benchmark comparison */
  readonly #audit: AuditRecorder | null
  readonly #metrics: GatewayMetrics
  readonly #access: AccessLog

  constructor (deps: { audit: AuditRecorder | null; metrics: GatewayMetrics; access: AccessLog }) {
    this.#audit = deps.audit
    this.#metrics = deps.metrics
    this.#access = deps.access
  }

  /**
   * HOT PATH: once per request. `waiter` (the answer still to end) hears once the audit event
   * is in the local log, later in this event-loop turn; at once when audit is off.
   */
  report (f: ExchangeFacts, waiter: AuditWaiter | null): void {
    const latencyMs = performance.now() - f.started
    const context = f.context
    const keyId = context === null ? null : context.keyId
    const audit = this.#audit
    if (audit === null) waiter?.auditLogged()
    else audit.record({
      id: randomUUID(),
      ts: f.ts,
      request_id: f.requestId,
      key_id: keyId,
      customer: context === null ? null : context.customer,
      team: context === null ? null : context.team,
      service: context === null ? null : context.service,
      environment: context === null ? null : context.environment,
      partner: f.requestedPartner,
      credential_id: f.credentialId,
      method: f.method,
      path: f.path,
      status: f.status,
      outcome: f.outcome,
      attempts: f.attempts,
      latency_ms: Math.round(latencyMs),
      upstream_latency_ms: f.upstreamLatencyMs === null ? null : Math.round(f.upstreamLatencyMs),
      cost: f.cost,
      bytes_in: f.bytesIn,
      bytes_out: f.bytesOut,
      payment_tx: f.paymentTx,
      payment_amount: auditPaymentAmount(f.paymentAmount),
    }, waiter)
    this.#metrics.requestFinished(f.partner, f.outcome, latencyMs / 1000)
    this.#access.write({
      request_id: f.requestId,
      key_id: keyId,
      partner: f.requestedPartner,
      method: f.method,
      path: f.path,
      status: f.status,
      outcome: f.outcome,
      latency_ms: Math.round(latencyMs),
      upstream_latency_ms: f.upstreamLatencyMs === null ? null : Math.round(f.upstreamLatencyMs),
    })
  }
}
