// Data-plane metrics of one worker, in its own prom-client Registry; the primary aggregates all
// workers' registries for /metrics (see cluster-metrics.ts). Labels are bounded: partner slugs
// of real partners only ('-' before a partner is known) and error codes — never keys or
// customers, whose numbers come from the usage API.
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const STATUS_CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx']

export interface MetricSources {
  keyCache (): { hits: number; misses: number; size: number }
  audit (): { queueDepth: number; spilledEvents: number; spillBytes: number; written: number; dropped: number } | null
}

type Inc = { inc (): void }
type Observe = { observe (value: number): void }

/** label children by label values, so the hot path does no label hashing */
class Children<C> {
  readonly #byKey = new Map<string, C>()
  readonly #create: (a: string, b: string) => C

  constructor (create: (a: string, b: string) => C) {
    this.#create = create
  }

  get (a: string, b = ''): C {
    const id = a + '\u0000' + b
    let child = this.#byKey.get(id)
    if (child === undefined) {
      child = this.#create(a, b)
      this.#byKey.set(id, child)
    }
    return child
  }
}

export class GatewayMetrics {
  readonly registry: Registry
  readonly #requests: Children<Inc>
  readonly #upstream: Children<Inc>
  readonly #refusals: Children<Inc>
  readonly #latency: Children<Observe>
  readonly #upstreamLatency: Children<Observe>

  constructor (sources: MetricSources) {
    const registry = new Registry()
    this.registry = registry
    const requests = new Counter({ name: 'relaykey_requests_total', help: 'Requests that reached the proxy route, by partner and outcome (forwarded or the error code).', labelNames: ['partner', 'outcome'], registers: [registry] })
    const upstream = new Counter({ name: 'relaykey_upstream_responses_total', help: 'Responses received from partners, by status class.', labelNames: ['partner', 'status_class'], registers: [registry] })
    const refusals = new Counter({ name: 'relaykey_refusals_total', help: 'Requests RelayKey answered itself with an error, by error code.', labelNames: ['code'], registers: [registry] })
    const latency = new Histogram({ name: 'relaykey_request_duration_seconds', help: 'Time from request arrival to the last response byte.', labelNames: ['partner'], buckets: LATENCY_BUCKETS, registers: [registry] })
    const upstreamLatency = new Histogram({ name: 'relaykey_upstream_duration_seconds', help: 'Time from dispatch to the partner\'s response headers.', labelNames: ['partner'], buckets: LATENCY_BUCKETS, registers: [registry] })
    this.#requests = new Children((partner, outcome) => requests.labels(partner, outcome))
    this.#upstream = new Children((partner, statusClass) => upstream.labels(partner, statusClass))
    this.#refusals = new Children((code) => refusals.labels(code))
    this.#latency = new Children((partner) => latency.labels(partner))
    this.#upstreamLatency = new Children((partner) => upstreamLatency.labels(partner))
    counterFrom(registry, 'relaykey_key_cache_hits_total', 'Key lookups answered from the worker cache.', () => sources.keyCache().hits)
    counterFrom(registry, 'relaykey_key_cache_misses_total', 'Key lookups that needed the store.', () => sources.keyCache().misses)
    gaugeFrom(registry, 'relaykey_key_cache_entries', 'Key contexts cached, summed over workers.', () => sources.keyCache().size)
    gaugeFrom(registry, 'relaykey_audit_queue_depth', 'Audit events waiting in memory.', () => sources.audit()?.queueDepth ?? 0)
    gaugeFrom(registry, 'relaykey_audit_spill_bytes', 'Bytes of audit events in spill files waiting for the database.', () => sources.audit()?.spillBytes ?? 0)
    counterFrom(registry, 'relaykey_audit_spilled_events_total', 'Audit events written to a spill file because the database was down or slow.', () => sources.audit()?.spilledEvents ?? 0)
    counterFrom(registry, 'relaykey_audit_written_events_total', 'Audit events stored in the database.', () => sources.audit()?.written ?? 0)
    counterFrom(registry, 'relaykey_audit_dropped_events_total', 'Audit events lost (must stay 0; alert on any increase).', () => sources.audit()?.dropped ?? 0)
  }

  /** HOT PATH: one call per request when it is over */
  requestFinished (partner: string, outcome: string, latencySeconds: number): void {
    this.#requests.get(partner, outcome).inc()
    if (outcome !== 'forwarded') this.#refusals.get(outcome).inc()
    this.#latency.get(partner).observe(latencySeconds)
  }

  /** HOT PATH: one call per upstream response */
  upstreamResponded (partner: string, status: number, latencySeconds: number): void {
    this.#upstream.get(partner, STATUS_CLASSES[Math.floor(status / 100)] ?? '5xx').inc()
    this.#upstreamLatency.get(partner).observe(latencySeconds)
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

function gaugeFrom (registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({ name, help, registers: [registry], collect () { this.set(read()) } })
}
