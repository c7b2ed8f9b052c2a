// The production path of /metrics: two real cluster workers serve their registries' JSON over
// the cluster IPC channel and the primary's clusterMetricsReader sums them. The text must be
// what AggregatorRegistry.aggregate makes of the same registries in one process.
import assert from 'node:assert/strict'
import cluster, { type Worker } from 'node:cluster'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { after, describe, test } from 'node:test'
import { AggregatorRegistry } from 'prom-client'
import { clusterMetricsReader } from '../../src/telemetry/cluster-metrics.js'
import { assertPromtoolAccepts } from '../helpers/promtool.js'
import { metricsFor, type MetricsJob } from './metrics-worker.fixture.js'

const WORKER = fileURLToPath(new URL('./metrics-worker.fixture.js', import.meta.url))

const JOBS: MetricsJob[] = [
  {
    requests: [['acme', 'forwarded', 0.004], ['acme', 'forwarded', 0.21], ['acme', 'rate_limited', 0.0003], ['beta', 'forwarded', 31]],
    upstream: [['acme', 200, 0.003], ['acme', 200, 0.19], ['beta', 503, 30]],
    keyCacheHits: 10,
  },
  {
    requests: [['acme', 'forwarded', 0.001], ['gamma "quoted"', 'budget_exhausted', 0.002], ['acme', 'rate_limited', 0.0004]],
    upstream: [['acme', 204, 0.0011], ['acme', 404, 0.05]],
    keyCacheHits: 5,
  },
]

describe('metrics over the cluster IPC channel', () => {
  const workers: Worker[] = []
  after(async () => {
    await Promise.all(workers.map(async (worker) => {
      if (worker.isDead()) return
      const exited = once(worker, 'exit')
      worker.kill()
      await exited
    }))
  })

  test('the primary\'s text sums the workers\' series exactly as an in-process aggregate does', async (t) => {
    cluster.setupPrimary({ exec: WORKER, silent: true })
    for (const job of JOBS) {
      const worker = cluster.fork({ RELAYKEY_METRICS_JOB: JSON.stringify(job) })
      workers.push(worker)
      const [message] = await once(worker, 'message') as [{ type: string }]
      assert.equal(message.type, 'ready')
    }

    const text = await clusterMetricsReader()()

    // the primary sums in the order the answers arrive, which orders the series and can move a
    // float sum's last digit: either worker may have answered first
    const inProcess = await Promise.all([JOBS, [...JOBS].reverse()].map(async (jobs) =>
      await AggregatorRegistry.aggregate(await Promise.all(jobs.map((job) => metricsFor(job).registry.getMetricsAsJSON()))).metrics()))
    assert.ok(inProcess.includes(text), `the primary's text is an in-process aggregate:\n${text}`)
    // and the sums are the sums
    const lines = text.split('\n')
    for (const line of [
      'relaykey_requests_total{partner="acme",outcome="forwarded"} 3',
      'relaykey_requests_total{partner="acme",outcome="rate_limited"} 2',
      'relaykey_refusals_total{code="rate_limited"} 2',
      'relaykey_refusals_total{code="budget_exhausted"} 1',
      'relaykey_upstream_responses_total{partner="acme",status_class="2xx"} 3',
      'relaykey_request_duration_seconds_bucket{le="0.001",partner="acme"} 3',
      'relaykey_request_duration_seconds_bucket{le="0.005",partner="acme"} 4',
      'relaykey_request_duration_seconds_bucket{le="+Inf",partner="acme"} 5',
      'relaykey_request_duration_seconds_count{partner="acme"} 5',
      'relaykey_request_duration_seconds_bucket{le="30",partner="beta"} 0',
      'relaykey_request_duration_seconds_bucket{le="+Inf",partner="beta"} 1',
      'relaykey_request_duration_seconds_count{partner="gamma \\"quoted\\""} 1',
      'relaykey_upstream_duration_seconds_bucket{le="30",partner="beta"} 1',
      'relaykey_key_cache_hits_total 15',
    ]) {
      assert.ok(lines.includes(line), line)
    }
    const sum = lines.find((line) => line.startsWith('relaykey_request_duration_seconds_sum{partner="acme"} '))
    assert.ok(Math.abs(Number(sum?.split(' ')[1]) - (0.004 + 0.21 + 0.0003 + 0.001 + 0.0004)) < 1e-12, sum)

    assertPromtoolAccepts(t, text)
  })
})
