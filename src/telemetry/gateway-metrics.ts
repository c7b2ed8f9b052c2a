// Data-plane metrics of one worker, in its own prom-client Registry; the primary aggregates all
// workers' registries for /metrics (see cluster-metrics.ts). Labels are bounded: partner slugs
// of real partners only ('-' before a partner is known) and error codes — never keys or
// customers, whose numbers come from the usage API.
import { Counter, Gauge, Registry } from 'prom-client'
import { LabelledCounter } from './labelled-counter.js'
import { LabelledHistogram } from './labelled-histogram.js'
import type { ReliabilitySnapshot } from '../reliability/partner-reliability.js'
import type { LeaseStats } from '../limits/lease-stats.js'
import type { LeaseKind } from '../limits/lease.js'

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const STATUS_CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx']

export interface MetricSources {
  keyCache (): { hits: number; misses: number; size: number }
  /** bytes of request bodies held to be signed; absent in unit tests */
  signedBodies?: () => number
  reliability (): ReliabilitySnapshot[]
  audit (): { queueDepth: number; replayedEvents: number; logBytes: number; logWriteFailures: number; written: number; dropped: number; quarantined: number } | null
  /** absent where a worker has no limits store (unit tests) */
  leases?: { readonly stats: LeaseStats; heldUnits (): Map<LeaseKind, number> }
}

// The per-request series are LabelledCounter/LabelledHistogram rather than prom-client's
// Counter/Histogram: those validate labels and build a hash string on every inc/observe, a few
// microseconds a request. Scrape-time numbers owned elsewhere stay plain prom-client metrics.
export class GatewayMetrics {
  readonly registry: Registry
  readonly #requests: LabelledCounter
  readonly #upstream: LabelledCounter
  readonly #refusals: LabelledCounter
  readonly #retries: LabelledCounter
  readonly #tlsFailures: LabelledCounter
  readonly #latency: LabelledHistogram
  readonly #upstreamLatency: LabelledHistogram

  constructor (sources: MetricSources) {
    const registry = new Registry()
    this.registry = registry
    this.#requests = new LabelledCounter({ name: 'relaykey_requests_total', help: 'Requests that reached the proxy route, by partner and outcome (forwarded or the error code).', labelNames: ['partner', 'outcome'], registry })
    this.#upstream = new LabelledCounter({ name: 'relaykey_upstream_responses_total', help: 'Responses received from partners, by status class.', labelNames: ['partner', 'status_class'], registry })
    this.#refusals = new LabelledCounter({ name: 'relaykey_refusals_total', help: 'Requests RelayKey answered itself with an error, by error code.', labelNames: ['code'], registry })
    this.#retries = new LabelledCounter({ name: 'relaykey_upstream_retries_total', help: 'Attempts sent again to a partner, by reason (connection, status, credential_rejected, token_refresh).', labelNames: ['partner', 'reason'], registry })
    this.#tlsFailures = new LabelledCounter({ name: 'relaykey_upstream_tls_failures_total', help: 'TLS connections to a partner that failed, by reason (unknown_ca, hostname_mismatch, certificate_expired, certificate_not_yet_valid, handshake_failed).', labelNames: ['partner', 'reason'], registry })
    this.#latency = new LabelledHistogram({ name: 'relaykey_request_duration_seconds', help: 'Time from request arrival to the last response byte.', labelName: 'partner', buckets: LATENCY_BUCKETS, registry })
    this.#upstreamLatency = new LabelledHistogram({ name: 'relaykey_upstream_duration_seconds', help: 'Time from dispatch to the partner\'s response headers.', labelName: 'partner', buckets: LATENCY_BUCKETS, registry })
    counterFrom(registry, 'relaykey_key_cache_hits_total', 'Key lookups answered from the worker cache.', () => sources.keyCache().hits)
    counterFrom(registry, 'relaykey_key_cache_misses_total', 'Key lookups that needed the store.', () => sources.keyCache().misses)
    if (sources.signedBodies !== undefined) gaugeFrom(registry, 'relaykey_signed_body_bytes', 'Bytes of request bodies held in memory to be signed (hmac and jwt partners), summed over workers.', sources.signedBodies)
    gaugeFrom(registry, 'relaykey_key_cache_entries', 'Key contexts cached, summed over workers.', () => sources.keyCache().size)
    gaugeFrom(registry, 'relaykey_audit_queue_depth', 'Audit events waiting in memory.', () => sources.audit()?.queueDepth ?? 0)
    gaugeFrom(registry, 'relaykey_audit_log_bytes', 'Bytes of local audit log on disk (segments not yet wholly in the database).', () => sources.audit()?.logBytes ?? 0)
    counterFrom(registry, 'relaykey_audit_replayed_events_total', 'Audit events shipped from the local log on disk rather than memory (after an outage, a full queue or a restart).', () => sources.audit()?.replayedEvents ?? 0)
    counterFrom(registry, 'relaykey_audit_log_write_failures_total', 'Audit events that could not be written to the local log (disk full or its bound reached); lost if the process stops before shipping them.', () => sources.audit()?.logWriteFailures ?? 0)
    counterFrom(registry, 'relaykey_audit_written_events_total', 'Audit events stored in the database.', () => sources.audit()?.written ?? 0)
    reliabilityMetrics(registry, sources.reliability)
    if (sources.leases !== undefined) leaseMetrics(registry, sources.leases)
    counterFrom(registry, 'relaykey_audit_dropped_events_total', 'Audit events lost (must stay 0; alert on any increase).', () => sources.audit()?.dropped ?? 0)
    counterFrom(registry, 'relaykey_audit_quarantined_events_total', 'Audit events the database refused for their content, set aside in the quarantine file (alert on any increase).', () => sources.audit()?.quarantined ?? 0)
  }

  /** HOT PATH: one call per request when it is over; map lookups and adds, nothing allocated */
  requestFinished (partner: string, outcome: string, latencySeconds: number): void {
    this.#requests.inc(partner, outcome)
    if (outcome !== 'forwarded') this.#refusals.inc(outcome)
    this.#latency.observe(partner, latencySeconds)
  }

  /** an attempt is about to be sent again */
  retried (partner: string, reason: string): void {
    this.#retries.inc(partner, reason)
  }

  /** a TLS connection to a partner failed, for `reason` (tls-failure.ts) */
  upstreamTlsFailed (partner: string, reason: string): void {
    this.#tlsFailures.inc(partner, reason)
  }

  /** HOT PATH: one call per upstream response; the status class is a constant string, not built */
  upstreamResponded (partner: string, status: number, latencySeconds: number): void {
    this.#upstream.inc(partner, STATUS_CLASSES[Math.floor(status / 100)] ?? '5xx')
    this.#upstreamLatency.observe(partner, latencySeconds)
  }
}

function counterFrom (registry: Registry, name: string, help: string, read: () => number): void {
  // a monotonic number owned elsewhere, exposed as a counter at scrape time
  new Counter({
    name,
    help,
    registers: [registry],
    collect () {
      this.reset()
      this.inc(read())
    },
  })
}

/** breakers, retry budgets and concurrency gates, read from their owner at scrape time */
function reliabilityMetrics (registry: Registry, read: () => ReliabilitySnapshot[]): void {
  new Gauge({
    name: 'relaykey_circuit_open',
    help: 'Circuit breakers currently open, by partner and scope (partner environment or credential), summed over workers.',
    labelNames: ['partner', 'scope'],
    registers: [registry],
    collect () {
      this.reset()
      for (const s of read()) {
        this.set({ partner: s.partner, scope: 'partner' }, s.openBreakers.partner)
        this.set({ partner: s.partner, scope: 'credential' }, s.openBreakers.credential)
      }
    },
  })
  new Counter({
    name: 'relaykey_circuit_openings_total',
    help: 'Times a circuit breaker opened, by partner and scope.',
    labelNames: ['partner', 'scope'],
    registers: [registry],
    collect () {
      this.reset()
      for (const s of read()) {
        this.inc({ partner: s.partner, scope: 'partner' }, s.breakerOpenings.partner)
        this.inc({ partner: s.partner, scope: 'credential' }, s.breakerOpenings.credential)
      }
    },
  })
  perPartnerCounter(registry, 'relaykey_concurrency_refusals_total', 'Requests refused because the partner had max_in_flight requests in flight.', read, (s) => s.concurrencyRefused)
  perPartnerCounter(registry, 'relaykey_retry_budget_exhausted_total', 'Retries not sent because the partner\'s retry budget was spent.', read, (s) => s.retryBudgetExhausted)
  new Gauge({
    name: 'relaykey_upstream_in_flight',
    help: 'Requests holding a slot of the partner\'s concurrency cap.',
    labelNames: ['partner'],
    registers: [registry],
    collect () {
      this.reset()
      for (const s of read()) this.set({ partner: s.partner }, s.inFlight)
    },
  })
}

/** admission by lease (src/limits/leased-admission.ts), read from the worker's LeaseStats */
function leaseMetrics (registry: Registry, leases: NonNullable<MetricSources['leases']>): void {
  const stats = leases.stats
  new Counter({
    name: 'relaykey_admissions_total',
    help: 'Limit decisions, by where they were taken: local (from a lease, no store call) or store.',
    labelNames: ['path'],
    registers: [registry],
    collect () {
      this.reset()
      this.inc({ path: 'local' }, stats.local)
      this.inc({ path: 'store' }, stats.store)
    },
  })
  new Counter({
    name: 'relaykey_lease_calls_total',
    help: 'Store calls made for leases outside any request: background top-ups and returns.',
    labelNames: ['call'],
    registers: [registry],
    collect () {
      this.reset()
      this.inc({ call: 'top_up' }, stats.topUpCalls)
      this.inc({ call: 'return' }, stats.returnCalls)
    },
  })
  perKindCounter(registry, 'relaykey_lease_grants_total', 'Lease grants received, by limit kind.', ['kind'], stats.grants)
  perKindCounter(registry, 'relaykey_lease_granted_units_total', 'Units received in lease grants, by limit kind.', ['kind'], stats.grantedUnits)
  perKindCounter(registry, 'relaykey_lease_returns_total', 'Leases given back with units left, by limit kind and reason (idle, expired, invalidated, shutdown).', ['kind', 'reason'], stats.returns)
  perKindCounter(registry, 'relaykey_lease_returned_units_total', 'Unspent lease units given back, by limit kind and reason.', ['kind', 'reason'], stats.returnedUnits)
  new Gauge({
    name: 'relaykey_leased_units',
    help: 'Units workers hold in leases now (counted as used in the store until spent or given back), by limit kind.',
    labelNames: ['kind'],
    registers: [registry],
    collect () {
      this.reset()
      for (const [kind, units] of leases.heldUnits()) this.set({ kind }, units)
    },
  })
}

/** a counter kept in a Map keyed by its label values, space-separated */
function perKindCounter (registry: Registry, name: string, help: string, labelNames: string[], counts: Map<string, number>): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect () {
      this.reset()
      for (const [key, value] of counts) {
        const values = key.split(' ')
        const labels: Record<string, string> = {}
        for (let i = 0; i < labelNames.length; i++) labels[labelNames[i]!] = values[i]!
        this.inc(labels, value)
      }
    },
  })
}

function perPartnerCounter (registry: Registry, name: string, help: string, read: () => ReliabilitySnapshot[], value: (s: ReliabilitySnapshot) => number): void {
  new Counter({
    name,
    help,
    labelNames: ['partner'],
    registers: [registry],
    collect () {
      this.reset()
      for (const s of read()) this.inc({ partner: s.partner }, value(s))
    },
  })
}

function gaugeFrom (registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({ name, help, registers: [registry], collect () { this.set(read()) } })
}
