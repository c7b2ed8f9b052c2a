// /metrics on the admin port: every worker's registry, aggregated by the primary over the
// cluster IPC channel (prom-client's AggregatorRegistry: counters and histograms summed).
import { AggregatorRegistry, type Registry } from 'prom-client'

/** in the primary: returns the Prometheus text for all workers */
export function clusterMetricsReader (): () => Promise<string> {
  const aggregator = new AggregatorRegistry()
  return () => aggregator.clusterMetrics()
}

/** in a worker: answer the primary's metric requests from this registry */
export function serveWorkerMetrics (registry: Registry): void {
  AggregatorRegistry.setRegistries([registry])
  // constructing one installs the worker's IPC listener
  void new AggregatorRegistry()
}
