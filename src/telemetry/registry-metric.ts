// The contract prom-client's Registry reads from a metric, so purpose-built metrics can sit in a
// Registry beside prom-client's own and be summed across workers by AggregatorRegistry.
import type { Metric, Registry } from 'prom-client'

/**
 * One exposed sample. `metricName` is the suffixed name (`…_bucket`, `…_sum`, `…_count`) of a
 * histogram's samples; without it the Registry prints the metric's own name.
 */
export interface Sample {
  value: number
  labels: Readonly<Record<string, string | number>>
  metricName?: string
}

/** the snapshot `get()` answers, as prom-client's Counter and Histogram do */
export interface MetricSnapshot {
  name: string
  help: string
  type: 'counter' | 'histogram'
  values: Sample[]
  aggregator: 'sum'
}

/**
 * What registry.js and cluster.js touch: `name` (rewritten in place by an OpenMetrics registry,
 * so not readonly), `help`, `type`, `aggregator` (AggregatorRegistry picks the merge function
 * by it), `get()` for the text and the JSON sent over IPC, `reset()` for resetMetrics().
 */
export interface RegistryMetric {
  name: string
  readonly help: string
  readonly type: 'counter' | 'histogram'
  readonly aggregator: 'sum'
  get (): Promise<MetricSnapshot>
  reset (): void
}

// Prometheus data model, the same patterns prom-client validates its own metrics with
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/** checks names once, at construction, so exposition can trust them */
export function checkNames (name: string, labelNames: readonly string[]): void {
  if (!METRIC_NAME.test(name)) throw new TypeError(`metric name ${JSON.stringify(name)} is not a valid Prometheus name`)
  for (const label of labelNames) {
    if (!LABEL_NAME.test(label) || label.startsWith('__')) throw new TypeError(`label name ${JSON.stringify(label)} of ${name} is not a valid Prometheus label name`)
  }
  if (new Set(labelNames).size !== labelNames.length) throw new TypeError(`${name} repeats a label name`)
}

export function registerMetric (registry: Registry, metric: RegistryMetric): void {
  // prom-client's typings name only its own classes; at run time the Registry is duck-typed
  // on the members listed on RegistryMetric
  registry.registerMetric(metric as unknown as Metric)
}
