// A cluster worker for cluster-metrics-over-ipc.test.ts: records the updates it is given in
// RELAYKEY_METRICS_JOB into a GatewayMetrics, answers the primary's metric requests as a real
// worker does, and says 'ready'.
import { GatewayMetrics } from '../../src/telemetry/gateway-metrics.js'
import { serveWorkerMetrics } from '../../src/telemetry/cluster-metrics.js'

export interface MetricsJob {
  requests: Array<[partner: string, outcome: string, latencySeconds: number]>
  upstream: Array<[partner: string, status: number, latencySeconds: number]>
  keyCacheHits: number
}

export function recordJob (metrics: GatewayMetrics, job: MetricsJob): void {
  for (const [partner, outcome, latency] of job.requests) metrics.requestFinished(partner, outcome, latency)
  for (const [partner, status, latency] of job.upstream) metrics.upstreamResponded(partner, status, latency)
}

export function metricsFor (job: MetricsJob): GatewayMetrics {
  const metrics = new GatewayMetrics({ keyCache: () => ({ hits: job.keyCacheHits, misses: 0, size: 0 }), reliability: () => [], audit: () => null })
  recordJob(metrics, job)
  return metrics
}

const raw = process.env.RELAYKEY_METRICS_JOB
if (raw !== undefined && process.send !== undefined) {
  serveWorkerMetrics(metricsFor(JSON.parse(raw) as MetricsJob).registry)
  process.send({ type: 'ready' })
}
