// The per-request metric updates, old beside new: requestFinished + upstreamResponded through
// prom-client's Counter/Histogram label children (the implementation before LabelledCounter and
// LabelledHistogram, copied below) and through GatewayMetrics as it is now.
// Run: npx tsc -p . && node dist/bench/metrics.bench.js
import assert from 'node:assert/strict'
import { constants, performance, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import { Counter, Histogram, Registry } from 'prom-client'
import { Bench, type FnReturnedObject } from 'tinybench'
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.js'

// ---- the old implementation, per-request part only (the collect()-based metrics are unchanged) ----

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const STATUS_CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx']

type Inc = { inc (): void }
type Observe = { observe (value: number): void }

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

class PromClientGatewayMetrics {
  readonly registry: Registry
  readonly #requests: Children<Inc>
  readonly #upstream: Children<Inc>
  readonly #refusals: Children<Inc>
  readonly #latency: Children<Observe>
  readonly #upstreamLatency: Children<Observe>

  constructor () {
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
  }

  requestFinished (partner: string, outcome: string, latencySeconds: number): void {
    this.#requests.get(partner, outcome).inc()
    if (outcome !== 'forwarded') this.#refusals.get(outcome).inc()
    this.#latency.get(partner).observe(latencySeconds)
  }

  upstreamResponded (partner: string, status: number, latencySeconds: number): void {
    this.#upstream.get(partner, STATUS_CLASSES[Math.floor(status / 100)] ?? '5xx').inc()
    this.#upstreamLatency.get(partner).observe(latencySeconds)
  }
}

// ---- the workload: one op is one request's two calls ----

interface Recorder {
  requestFinished (partner: string, outcome: string, latencySeconds: number): void
  upstreamResponded (partner: string, status: number, latencySeconds: number): void
}

const PARTNERS = ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark', 'wayne', 'tyrell']
// 1 in 8 refused, as the refusal counter is touched only then
const OUTCOMES = ['forwarded', 'forwarded', 'forwarded', 'forwarded', 'forwarded', 'forwarded', 'forwarded', 'rate_limited']
const STATUSES = [200, 200, 200, 201, 204, 404, 429, 503]
// An array that also held a string keeps its numbers boxed, so reading one passes an existing
// HeapNumber: the loop itself allocates nothing and what is measured is the recorder.
const LATENCIES: unknown[] = [0.0004, 0.0031, 0.0072, 0.012, 0.033, 0.07, 0.3, 'boxed']
LATENCIES[7] = 2.2

function record (metrics: Recorder, i: number): void {
  const partner = PARTNERS[i & 7]
  metrics.requestFinished(partner, OUTCOMES[(i >> 3) & 7], LATENCIES[(i >> 1) & 7] as number)
  metrics.upstreamResponded(partner, STATUSES[(i >> 2) & 7], LATENCIES[(i >> 4) & 7] as number)
}

const SOURCES = { keyCache: () => ({ hits: 0, misses: 0, size: 0 }), reliability: () => [], audit: () => null }

// Same updates, same text: otherwise the comparison is of two different things.
{
  const old = new PromClientGatewayMetrics()
  const now = new GatewayMetrics(SOURCES)
  for (let i = 0; i < 4096; i++) { record(old, i); record(now, i) }
  const perRequest = (text: string): string => text.trimEnd().split('\n\n').filter((block) => !block.includes('_key_cache_') && !block.includes('_audit_')).join('\n\n')
  const ours = perRequest(await now.registry.metrics()).split('\n')
  const theirs = perRequest(await old.registry.metrics()).split('\n')
  const at = ours.findIndex((line, i) => line !== theirs[i])
  assert.ok(at === -1 && ours.length === theirs.length, `line ${at}: ${ours[at]} ≠ ${theirs[at]}`)
}

// One op is well under a microsecond, near what reading the clock costs, so each sample times a
// batch and reports the per-op duration; the batch's real cost still drives the time budget.
const BATCH = 1000

function perOp (elapsed: number): FnReturnedObject {
  return { overriddenDuration: elapsed / BATCH, overriddenIterationCost: elapsed }
}

const old = new PromClientGatewayMetrics()
const now = new GatewayMetrics(SOURCES)
let oldCursor = 0
let nowCursor = 0

const bench = new Bench({ time: 2000, warmupTime: 500 })
bench.add('prom-client Counter/Histogram children (old)', () => {
  const start = performance.now()
  for (let n = 0; n < BATCH; n++) record(old, oldCursor++)
  return perOp(performance.now() - start)
})
bench.add('LabelledCounter/LabelledHistogram (new)', () => {
  const start = performance.now()
  for (let n = 0; n < BATCH; n++) record(now, nowCursor++)
  return perOp(performance.now() - start)
})
await bench.run()
console.table(bench.table())

// ---- allocation: young-generation GCs while each records the same million requests ----

async function minorGcs (metrics: Recorder, requests: number): Promise<number> {
  for (let i = 0; i < 100_000; i++) record(metrics, i)
  let minor = 0
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>) {
      if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  for (let i = 0; i < requests; i++) record(metrics, i)
  await new Promise((resolve) => setTimeout(resolve, 100))
  observer.disconnect()
  return minor
}

const REQUESTS = 1_000_000
console.table([
  { implementation: 'prom-client (old)', [`minor GCs per ${REQUESTS} requests`]: await minorGcs(new PromClientGatewayMetrics(), REQUESTS) },
  { implementation: 'labelled (new)', [`minor GCs per ${REQUESTS} requests`]: await minorGcs(new GatewayMetrics(SOURCES), REQUESTS) },
])
