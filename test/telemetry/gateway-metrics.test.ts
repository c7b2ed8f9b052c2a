// The worker's /metrics text: what the per-request counters and histograms print, that it is
// the text prom-client's own Counter and Histogram print for the same updates, that the
// primary's AggregatorRegistry sums two workers sample by sample, and that promtool accepts it.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client'
import { assertPromtoolAccepts } from '../helpers/promtool.js'
import { GatewayMetrics, type MetricSources } from '../../src/telemetry/gateway-metrics.js'

const BOUNDS = ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '30']

const SOURCES: MetricSources = {
  keyCache: () => ({ hits: 7, misses: 2, size: 5 }), reliability: () => [],
  audit: () => ({ queueDepth: 3, replayedEvents: 1, logBytes: 512, logWriteFailures: 2, written: 40, dropped: 0, quarantined: 4 }),
}

function metrics (): GatewayMetrics {
  return new GatewayMetrics(SOURCES)
}

/** the `# HELP … ` block of one metric in a registry's text, without the blank line after it */
function block (text: string, name: string): string {
  const found = text.split('\n\n').find((b) => b.startsWith(`# HELP ${name} `))
  assert.ok(found !== undefined, `${name} is in the text`)
  return found.trimEnd()
}

/** the lines a histogram series prints for its cumulative counts (one per bound, then +Inf) */
function histogramLines (name: string, partner: string, cumulative: number[], sum: number): string[] {
  assert.equal(cumulative.length, BOUNDS.length + 1)
  const lines = cumulative.map((n, i) => `${name}_bucket{le="${BOUNDS[i] ?? '+Inf'}",partner="${partner}"} ${n}`)
  lines.push(`${name}_sum{partner="${partner}"} ${sum}`, `${name}_count{partner="${partner}"} ${cumulative[BOUNDS.length]}`)
  return lines
}

describe('per-request metrics in the exposition text', () => {
  test('counts requests by partner and outcome, and refusals by code, as counters', async () => {
    const m = metrics()
    m.requestFinished('acme', 'forwarded', 0.01)
    m.requestFinished('acme', 'forwarded', 0.02)
    m.requestFinished('beta', 'rate_limited', 0.001)
    m.requestFinished('acme', 'rate_limited', 0.001)
    m.requestFinished('-', 'unknown_partner', 0.0001)
    m.requestFinished('acme', 'forwarded', 0.03)
    const text = await m.registry.metrics()
    assert.equal(block(text, 'relaykey_requests_total'), [
      '# HELP relaykey_requests_total Requests that reached the proxy route, by partner and outcome (forwarded or the error code).',
      '# TYPE relaykey_requests_total counter',
      'relaykey_requests_total{partner="acme",outcome="forwarded"} 3',
      'relaykey_requests_total{partner="beta",outcome="rate_limited"} 1',
      'relaykey_requests_total{partner="acme",outcome="rate_limited"} 1',
      'relaykey_requests_total{partner="-",outcome="unknown_partner"} 1',
    ].join('\n'))
    assert.equal(block(text, 'relaykey_refusals_total'), [
      '# HELP relaykey_refusals_total Requests RelayKey answered itself with an error, by error code.',
      '# TYPE relaykey_refusals_total counter',
      'relaykey_refusals_total{code="rate_limited"} 2',
      'relaykey_refusals_total{code="unknown_partner"} 1',
    ].join('\n'))
  })

  test('counts upstream responses by status class, statuses outside 100–599 included', async () => {
    const m = metrics()
    for (const status of [200, 204, 299, 301, 404, 429, 500, 503, 599, 100, 99, 600, 700]) m.upstreamResponded('acme', status, 0.01)
    const text = await m.registry.metrics()
    assert.equal(block(text, 'relaykey_upstream_responses_total'), [
      '# HELP relaykey_upstream_responses_total Responses received from partners, by status class.',
      '# TYPE relaykey_upstream_responses_total counter',
      'relaykey_upstream_responses_total{partner="acme",status_class="2xx"} 3',
      'relaykey_upstream_responses_total{partner="acme",status_class="3xx"} 1',
      'relaykey_upstream_responses_total{partner="acme",status_class="4xx"} 2',
      'relaykey_upstream_responses_total{partner="acme",status_class="5xx"} 5',
      'relaykey_upstream_responses_total{partner="acme",status_class="1xx"} 2',
    ].join('\n'))
  })

  test('buckets are cumulative, a value on a bound counts in that bound, one above the top only in +Inf', async () => {
    const m = metrics()
    const observed = [0.001, 0.0049, 0.3, 45, 0.0049]
    for (const latency of observed) m.requestFinished('acme', 'forwarded', latency)
    m.requestFinished('beta', 'forwarded', 30)
    const text = await m.registry.metrics()
    assert.equal(block(text, 'relaykey_request_duration_seconds'), [
      '# HELP relaykey_request_duration_seconds Time from request arrival to the last response byte.',
      '# TYPE relaykey_request_duration_seconds histogram',
      //                                                       0.001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 30 +Inf
      ...histogramLines('relaykey_request_duration_seconds', 'acme', [1, 1, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5], 0.001 + 0.0049 + 0.3 + 45 + 0.0049),
      ...histogramLines('relaykey_request_duration_seconds', 'beta', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1], 30),
    ].join('\n'))
    // upstream latency is its own histogram: nothing recorded there yet, so no series
    assert.equal(block(text, 'relaykey_upstream_duration_seconds'), [
      '# HELP relaykey_upstream_duration_seconds Time from dispatch to the partner\'s response headers.',
      '# TYPE relaykey_upstream_duration_seconds histogram',
    ].join('\n'))
    m.upstreamResponded('beta', 200, 0.002)
    assert.equal(block(await m.registry.metrics(), 'relaykey_upstream_duration_seconds').split('\n').slice(2).join('\n'),
      histogramLines('relaykey_upstream_duration_seconds', 'beta', [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 0.002).join('\n'))
  })

  test('a latency that is not a finite number is left out of the histogram, the request still counted', async () => {
    const m = metrics()
    m.requestFinished('acme', 'forwarded', Number.NaN)
    m.requestFinished('acme', 'forwarded', Number.POSITIVE_INFINITY)
    m.upstreamResponded('acme', 200, Number.NaN)
    m.requestFinished('acme', 'forwarded', 0.004)
    const text = await m.registry.metrics()
    assert.match(text, /^relaykey_requests_total\{partner="acme",outcome="forwarded"\} 3$/m)
    assert.match(text, /^relaykey_upstream_responses_total\{partner="acme",status_class="2xx"\} 1$/m)
    assert.match(text, /^relaykey_request_duration_seconds_sum\{partner="acme"\} 0.004$/m)
    assert.match(text, /^relaykey_request_duration_seconds_count\{partner="acme"\} 1$/m)
    assert.doesNotMatch(text, / (NaN|Nan|\+Inf|-Inf)$/m)
  })

  test('every metric keeps its name, type and help', async () => {
    const listed = (await metrics().registry.getMetricsAsJSON()).map((metric) => [metric.name, metric.type, metric.help, metric.aggregator])
    assert.deepEqual(listed, [
      ['relaykey_requests_total', 'counter', 'Requests that reached the proxy route, by partner and outcome (forwarded or the error code).', 'sum'],
      ['relaykey_upstream_responses_total', 'counter', 'Responses received from partners, by status class.', 'sum'],
      ['relaykey_refusals_total', 'counter', 'Requests RelayKey answered itself with an error, by error code.', 'sum'],
      ['relaykey_upstream_retries_total', 'counter', 'Attempts sent again to a partner, by reason (connection, status, credential_rejected, token_refresh).', 'sum'],
      ['relaykey_upstream_tls_failures_total', 'counter', 'TLS connections to a partner that failed, by reason (unknown_ca, hostname_mismatch, certificate_expired, certificate_not_yet_valid, handshake_failed).', 'sum'],
      ['relaykey_request_duration_seconds', 'histogram', 'Time from request arrival to the last response byte.', 'sum'],
      ['relaykey_upstream_duration_seconds', 'histogram', 'Time from dispatch to the partner\'s response headers.', 'sum'],
      ['relaykey_key_cache_hits_total', 'counter', 'Key lookups answered from the worker cache.', 'sum'],
      ['relaykey_key_cache_misses_total', 'counter', 'Key lookups that needed the store.', 'sum'],
      ['relaykey_key_cache_entries', 'gauge', 'Key contexts cached, summed over workers.', 'sum'],
      ['relaykey_audit_queue_depth', 'gauge', 'Audit events waiting in memory.', 'sum'],
      ['relaykey_audit_log_bytes', 'gauge', 'Bytes of local audit log on disk (segments not yet wholly in the database).', 'sum'],
      ['relaykey_audit_replayed_events_total', 'counter', 'Audit events shipped from the local log on disk rather than memory (after an outage, a full queue or a restart).', 'sum'],
      ['relaykey_audit_log_write_failures_total', 'counter', 'Audit events that could not be written to the local log (disk full or its bound reached); lost if the process stops before shipping them.', 'sum'],
      ['relaykey_audit_written_events_total', 'counter', 'Audit events stored in the database.', 'sum'],
      ['relaykey_circuit_open', 'gauge', 'Circuit breakers currently open, by partner and scope (partner environment or credential), summed over workers.', 'sum'],
      ['relaykey_circuit_openings_total', 'counter', 'Times a circuit breaker opened, by partner and scope.', 'sum'],
      ['relaykey_concurrency_refusals_total', 'counter', 'Requests refused because the partner had max_in_flight requests in flight.', 'sum'],
      ['relaykey_retry_budget_exhausted_total', 'counter', 'Retries not sent because the partner\'s retry budget was spent.', 'sum'],
      ['relaykey_upstream_in_flight', 'gauge', 'Requests holding a slot of the partner\'s concurrency cap.', 'sum'],
      ['relaykey_audit_dropped_events_total', 'counter', 'Audit events lost (must stay 0; alert on any increase).', 'sum'],
      ['relaykey_audit_quarantined_events_total', 'counter', 'Audit events the database refused for their content, set aside in the quarantine file (alert on any increase).', 'sum'],
    ])
  })

  test('the cache and audit numbers are still read at scrape time', async () => {
    const text = await metrics().registry.metrics()
    for (const line of ['relaykey_key_cache_hits_total 7', 'relaykey_key_cache_misses_total 2', 'relaykey_key_cache_entries 5',
      'relaykey_audit_queue_depth 3', 'relaykey_audit_log_bytes 512', 'relaykey_audit_replayed_events_total 1', 'relaykey_audit_log_write_failures_total 2',
      'relaykey_audit_written_events_total 40', 'relaykey_audit_dropped_events_total 0', 'relaykey_audit_quarantined_events_total 4']) {
      assert.ok(text.split('\n').includes(line), line)
    }
  })

  test('breakers, retry budgets and concurrency gates are read at scrape time, per partner', async () => {
    const m = new GatewayMetrics({
      ...SOURCES,
      reliability: () => [{ partner: 'acme', openBreakers: { partner: 1, credential: 2 }, breakerOpenings: { partner: 4, credential: 0 }, inFlight: 7, concurrencyRefused: 3, retryBudgetExhausted: 9 }],
    })
    m.retried('acme', 'status')
    const lines = (await m.registry.metrics()).split('\n')
    for (const line of ['relaykey_circuit_open{partner="acme",scope="partner"} 1', 'relaykey_circuit_open{partner="acme",scope="credential"} 2',
      'relaykey_circuit_openings_total{partner="acme",scope="partner"} 4', 'relaykey_upstream_in_flight{partner="acme"} 7',
      'relaykey_concurrency_refusals_total{partner="acme"} 3', 'relaykey_retry_budget_exhausted_total{partner="acme"} 9',
      'relaykey_upstream_retries_total{partner="acme",reason="status"} 1']) {
      assert.ok(lines.includes(line), line)
    }
  })

  test('resetMetrics empties the per-request series, and counting starts again from zero', async () => {
    const m = metrics()
    m.requestFinished('acme', 'rate_limited', 0.01)
    m.upstreamResponded('acme', 200, 0.01)
    m.registry.resetMetrics()
    assert.doesNotMatch(await m.registry.metrics(), /partner=|code=/)
    m.requestFinished('acme', 'rate_limited', 0.01)
    assert.match(await m.registry.metrics(), /^relaykey_refusals_total\{code="rate_limited"\} 1$/m)
  })
})

// ---- prom-client as the reference: the same updates through its own Counter and Histogram ----

interface Update { partner: string; outcome: string; status: number; latency: number; upstreamLatency: number }

const PARTNERS = ['acme', 'beta', '-', 'quote"d', 'back\\slash', 'line\nbreak', 'ünïcode']
const OUTCOMES = ['forwarded', 'forwarded', 'forwarded', 'rate_limited', 'budget_exhausted', 'upstream_timeout']
const STATUSES = [200, 201, 204, 304, 400, 404, 429, 500, 502, 503, 99, 700]
// bounds themselves, values between, 0, a negative (clock step) and values past the top bound
const LATENCIES = [0, 0.001, 0.0025, 0.0031, 0.01, 0.047, 0.1, 0.33, 1, 2.5, 7, 30, 30.0001, 120, -0.002]

/** a fixed pseudo-random sequence (LCG), so a failure reproduces */
function updates (seed: number, n: number): Update[] {
  let x = seed
  const next = (k: number): number => {
    x = (x * 1103515245 + 12345) % 2147483648
    // the high bits: an LCG's low bits repeat with a short period
    return Math.floor(x / 65536) % k
  }
  const out: Update[] = []
  for (let i = 0; i < n; i++) {
    out.push({
      partner: PARTNERS[next(PARTNERS.length)],
      outcome: OUTCOMES[next(OUTCOMES.length)],
      status: STATUSES[next(STATUSES.length)],
      latency: LATENCIES[next(LATENCIES.length)] + next(1000) / 1e6,
      upstreamLatency: LATENCIES[next(LATENCIES.length)],
    })
  }
  return out
}

const PER_REQUEST = ['relaykey_requests_total', 'relaykey_upstream_responses_total', 'relaykey_refusals_total', 'relaykey_request_duration_seconds', 'relaykey_upstream_duration_seconds']

/** the per-request metrics as prom-client's classes would keep them, with the old status classes */
function promClientReference (list: Update[]): Registry {
  const registry = new Registry()
  const buckets = BOUNDS.map(Number)
  const requests = new Counter({ name: 'relaykey_requests_total', help: 'Requests that reached the proxy route, by partner and outcome (forwarded or the error code).', labelNames: ['partner', 'outcome'], registers: [registry] })
  const upstream = new Counter({ name: 'relaykey_upstream_responses_total', help: 'Responses received from partners, by status class.', labelNames: ['partner', 'status_class'], registers: [registry] })
  const refusals = new Counter({ name: 'relaykey_refusals_total', help: 'Requests RelayKey answered itself with an error, by error code.', labelNames: ['code'], registers: [registry] })
  const latency = new Histogram({ name: 'relaykey_request_duration_seconds', help: 'Time from request arrival to the last response byte.', labelNames: ['partner'], buckets, registers: [registry] })
  const upstreamLatency = new Histogram({ name: 'relaykey_upstream_duration_seconds', help: 'Time from dispatch to the partner\'s response headers.', labelNames: ['partner'], buckets, registers: [registry] })
  const classes = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx']
  for (const u of list) {
    requests.labels(u.partner, u.outcome).inc()
    if (u.outcome !== 'forwarded') refusals.labels(u.outcome).inc()
    latency.labels(u.partner).observe(u.latency)
    upstream.labels(u.partner, classes[Math.floor(u.status / 100)] ?? '5xx').inc()
    upstreamLatency.labels(u.partner).observe(u.upstreamLatency)
  }
  return registry
}

function recorded (list: Update[]): GatewayMetrics {
  const m = metrics()
  for (const u of list) {
    m.requestFinished(u.partner, u.outcome, u.latency)
    m.upstreamResponded(u.partner, u.status, u.upstreamLatency)
  }
  return m
}

function perRequestBlocks (text: string): string {
  return PER_REQUEST.map((name) => block(text, name)).join('\n\n')
}

describe('same text as prom-client', () => {
  test('prints byte for byte what prom-client\'s Counter and Histogram print for the same updates', async () => {
    const list = updates(1, 3000)
    const ours = perRequestBlocks(await recorded(list).registry.metrics())
    const theirs = perRequestBlocks(await promClientReference(list).metrics())
    // every partner × outcome (7 × 4), partner × status class (7 × 5), refusal code (3), 7
    // partners' 17 lines in each histogram (2 × 119); 5 metrics' 2 header lines, 4 blank lines
    assert.equal(ours.split('\n').length, 28 + 35 + 3 + 238 + 10 + 4, 'the sequence reaches every series')
    assert.equal(ours, theirs)
  })

  test('gives AggregatorRegistry the JSON prom-client gives it, so the summed text is the same too', async () => {
    const a = updates(2, 1500)
    const b = updates(3, 1500)
    const ours = AggregatorRegistry.aggregate([await recorded(a).registry.getMetricsAsJSON(), await recorded(b).registry.getMetricsAsJSON()])
    const theirs = AggregatorRegistry.aggregate([await promClientReference(a).getMetricsAsJSON(), await promClientReference(b).getMetricsAsJSON()])
    assert.equal(perRequestBlocks(await ours.metrics()), perRequestBlocks(await theirs.metrics()))
  })
})

describe('aggregation across workers', () => {
  test('sums two workers\' counters, buckets, sums and counts; a series one worker lacks passes through', async () => {
    const one = metrics()
    const two = metrics()
    one.requestFinished('acme', 'forwarded', 0.004)
    one.requestFinished('acme', 'rate_limited', 0.0005)
    one.upstreamResponded('acme', 200, 0.02)
    two.requestFinished('acme', 'forwarded', 0.2)
    two.requestFinished('acme', 'forwarded', 3)
    two.requestFinished('beta', 'forwarded', 0.004)
    two.upstreamResponded('acme', 200, 0.03)
    two.upstreamResponded('acme', 502, 0.5)
    const text = await AggregatorRegistry.aggregate([await one.registry.getMetricsAsJSON(), await two.registry.getMetricsAsJSON()]).metrics()

    assert.deepEqual(block(text, 'relaykey_requests_total').split('\n').slice(2), [
      'relaykey_requests_total{partner="acme",outcome="forwarded"} 3',
      'relaykey_requests_total{partner="acme",outcome="rate_limited"} 1',
      'relaykey_requests_total{partner="beta",outcome="forwarded"} 1',
    ])
    assert.deepEqual(block(text, 'relaykey_refusals_total').split('\n').slice(2), ['relaykey_refusals_total{code="rate_limited"} 1'])
    assert.deepEqual(block(text, 'relaykey_upstream_responses_total').split('\n').slice(2), [
      'relaykey_upstream_responses_total{partner="acme",status_class="2xx"} 2',
      'relaykey_upstream_responses_total{partner="acme",status_class="5xx"} 1',
    ])
    assert.deepEqual(block(text, 'relaykey_request_duration_seconds').split('\n'), [
      '# HELP relaykey_request_duration_seconds Time from request arrival to the last response byte.',
      '# TYPE relaykey_request_duration_seconds histogram',
      // acme: 0.004 and 0.0005 from one, 0.2 and 3 from two
      ...histogramLines('relaykey_request_duration_seconds', 'acme', [1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4], (0.004 + 0.0005) + (0.2 + 3)),
      ...histogramLines('relaykey_request_duration_seconds', 'beta', [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 0.004),
    ])
    assert.deepEqual(block(text, 'relaykey_upstream_duration_seconds').split('\n').slice(2),
      histogramLines('relaykey_upstream_duration_seconds', 'acme', [0, 0, 0, 0, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3], 0.02 + (0.03 + 0.5)))
    // the collect()-based numbers are summed as before: two workers reading the same sources
    assert.ok(text.split('\n').includes('relaykey_key_cache_hits_total 14'))
    assert.ok(text.split('\n').includes('relaykey_audit_log_bytes 1024'))
  })
})

describe('promtool', () => {
  test('promtool check metrics accepts a worker\'s text and the aggregated text', async (t) => {
    const list = updates(4, 800)
    const worker = await recorded(list).registry.metrics()
    const aggregated = await AggregatorRegistry.aggregate([
      await recorded(list).registry.getMetricsAsJSON(), await recorded(updates(5, 800)).registry.getMetricsAsJSON(),
    ]).metrics()
    for (const text of [worker, aggregated]) {
      if (!assertPromtoolAccepts(t, text)) return
    }
  })
})
