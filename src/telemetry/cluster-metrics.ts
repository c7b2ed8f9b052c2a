// /metrics on the admin port: every worker's registries, aggregated by the primary over the
// cluster IPC channel (prom-client's AggregatorRegistry: each metric merged by its own
// aggregator, sum unless it names another), followed by the primary's own process metrics.
import { AggregatorRegistry, Registry, collectDefaultMetrics } from 'prom-client'

/** the primary's own process metrics carry this prefix, so no name is both the workers' aggregate and the primary's */
export const PRIMARY_PROCESS_PREFIX = 'relaykey_primary_'

// prom-client's gauges named like counters (promtool rejects a gauge ending in _total); each is
// the sum of the per-type series of the metric without the suffix, which stays
const TOTAL_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

/**
 * prom-client's default process and Node.js metrics (CPU, memory, event-loop lag, heap, GC,
 * handles, version) of this process, in a registry of their own. They are read at scrape time
 * (GC durations are observed as collections happen), nothing on the request path. One per process.
 */
export function processMetrics (prefix = ''): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix })
  for (const name of TOTAL_GAUGES) registry.removeSingleMetric(prefix + name)
  return registry
}

/**
 * in the primary: returns the Prometheus text for all workers, then `primary`'s metrics (the
 * primary's processMetrics(PRIMARY_PROCESS_PREFIX)) when given
 */
export function clusterMetricsReader (primary: Registry | null = null): () => Promise<string> {
  const aggregator = new AggregatorRegistry()
  if (primary === null) return () => aggregator.clusterMetrics()
  return async () => {
    const [workers, own] = await Promise.all([aggregator.clusterMetrics(), primary.metrics()])
    // each text is whole families ending in a newline ('' when no worker is up); a blank line between
    return workers === '' ? own : `${workers}\n${own}`
  }
}

/** in a worker: answer the primary's metric requests from these registries (names must not repeat across them) */
export function serveWorkerMetrics (...registries: Registry[]): void {
  AggregatorRegistry.setRegistries(registries)
  // constructing one installs the worker's IPC listener
  void new AggregatorRegistry()
}
