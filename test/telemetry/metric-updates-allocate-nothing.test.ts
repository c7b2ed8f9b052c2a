// The per-request metric updates allocate nothing once their series exist (a regression to
// label objects, key strings or boxed doubles shows up as young-generation GCs), and the metric
// classes refuse bad options when they are built rather than at scrape time.
import assert from 'node:assert/strict'
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import { describe, test } from 'node:test'
import { Registry } from 'prom-client'
import { GatewayMetrics } from '../../src/telemetry/gateway-metrics.js'
import { LabelledCounter } from '../../src/telemetry/labelled-counter.js'
import { LabelledHistogram } from '../../src/telemetry/labelled-histogram.js'

const PARTNERS = ['acme', 'beta', 'gamma', '-']
const OUTCOMES = ['forwarded', 'forwarded', 'forwarded', 'rate_limited']
const STATUSES = [200, 201, 404, 503]
// Latencies come from an array that also holds a string, so its elements are stored boxed:
// reading one hands over the existing HeapNumber. From a plain number array each call would box
// its double argument here, in the test's loop, and count against the code under test.
const LATENCIES: unknown[] = [0.0004, 0.003, 0.012, 0.07, 0.3, 1.5, 45, 'boxed']
LATENCIES[7] = 0.0021

function minorGcsDuring (run: () => void): Promise<number> {
  let minor = 0
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>) {
      if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  run()
  // gc entries are delivered after the synchronous run, on a later turn
  return new Promise((resolve) => setTimeout(() => { observer.disconnect(); resolve(minor) }, 100))
}

describe('per-request updates', () => {
  test('requestFinished and upstreamResponded cause no young-generation GC over 4 million calls', async () => {
    const m = new GatewayMetrics({ keyCache: () => ({ hits: 0, misses: 0, size: 0 }), reliability: () => [], audit: () => null })
    const run = (n: number): void => {
      for (let i = 0; i < n; i++) {
        const partner = PARTNERS[i & 3]
        m.requestFinished(partner, OUTCOMES[(i >> 2) & 3], LATENCIES[i & 7] as number)
        m.upstreamResponded(partner, STATUSES[(i >> 4) & 3], LATENCIES[(i >> 3) & 7] as number)
      }
    }
    // creates every series and lets the JIT optimise: the interpreter boxes doubles itself
    run(300_000)
    const gcs = await minorGcsDuring(() => run(2_000_000))
    // 16 bytes a call would be 64 MB here, several scavenges; 1 leaves room for a JIT hiccup
    assert.ok(gcs <= 1, `${gcs} minor GCs`)
    // and the updates landed: acme is every 4th call, forwarded 3 of its 4 outcomes
    const text = await m.registry.metrics()
    assert.match(text, /^relaykey_requests_total\{partner="acme",outcome="forwarded"\} 431250$/m)
  })
})

describe('construction', () => {
  test('a histogram refuses bounds that are empty, unordered, repeated or not finite, and an le label', () => {
    const registry = new Registry()
    for (const buckets of [[], [0.1, 0.05], [0.1, 0.1], [0.1, Number.POSITIVE_INFINITY], [Number.NaN]]) {
      assert.throws(() => new LabelledHistogram({ name: 'h_seconds', help: 'h', labelName: 'partner', buckets, registry }), TypeError, String(buckets))
    }
    assert.throws(() => new LabelledHistogram({ name: 'h_seconds', help: 'h', labelName: 'le', buckets: [1], registry }), /'le'/)
    assert.deepEqual(registry.getMetricsAsArray(), [], 'nothing half-built was registered')
  })

  test('a counter refuses invalid metric and label names and a repeated label', () => {
    const registry = new Registry()
    assert.throws(() => new LabelledCounter({ name: 'bad-name', help: 'h', labelNames: ['a'], registry }), /metric name/)
    assert.throws(() => new LabelledCounter({ name: 'c_total', help: 'h', labelNames: ['a', '1b'], registry }), /label name/)
    assert.throws(() => new LabelledCounter({ name: 'c_total', help: 'h', labelNames: ['__reserved'], registry }), /label name/)
    assert.throws(() => new LabelledCounter({ name: 'c_total', help: 'h', labelNames: ['a', 'a'], registry }), /repeats/)
  })

  test('a second metric of the same name in one registry is refused, as prom-client refuses it', () => {
    const registry = new Registry()
    new LabelledCounter({ name: 'c_total', help: 'h', labelNames: ['a'], registry })
    assert.throws(() => new LabelledCounter({ name: 'c_total', help: 'h', labelNames: ['a'], registry }), /already been registered/)
  })
})
