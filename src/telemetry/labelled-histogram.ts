// A histogram with one label whose observe is a Map lookup, a short scan of the bounds and three
// adds into preallocated storage: no label object, no key string, no allocation once a series
// exists. Exposed like a prom-client Histogram (cumulative `_bucket{le=…}`, `+Inf`, `_sum`,
// `_count`), so AggregatorRegistry sums it across workers sample by sample.
import type { Registry } from 'prom-client'
import { checkNames, registerMetric, type MetricSnapshot, type RegistryMetric, type Sample } from './registry-metric.js'

/**
 * One series. Counts are per bucket, not cumulative, so observe touches one slot; the
 * cumulative `le` counts are summed at scrape time:
 *
 *   bounds:  [ b0 ,  b1 ,  … , bn-1 ]
 *   counts:  [ ≤b0 | (b0,b1] | … | (bn-2,bn-1] | >bn-1 ]   length n + 1
 *                                                  ▲ only in +Inf, which is `count`
 *
 * Float64Array, not Uint32Array: a busy worker passes 2^32 observations in days, a double
 * counts exactly to 2^53.
 */
class HistogramSeries {
  readonly labels: Readonly<Record<string, string>>
  readonly counts: Float64Array
  // Numbers start here, not in the constructor: tsc emits a field declared without a value as
  // `sum;`, which defines it as undefined first, and V8 then keeps the field tagged and boxes
  // every double written to it, one allocation per observe. Starting as a number lets V8 keep
  // it as a double updated in place.
  sum = 0
  count = 0

  constructor (labels: Readonly<Record<string, string>>, buckets: number) {
    this.labels = labels
    this.counts = new Float64Array(buckets + 1)
  }
}

export interface LabelledHistogramOptions {
  name: string
  help: string
  labelName: string
  /** upper bounds, finite and strictly increasing; +Inf is implied */
  buckets: readonly number[]
  registry: Registry
}

export class LabelledHistogram implements RegistryMetric {
  name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #labelName: string
  readonly #bounds: Float64Array
  readonly #byLabel: Map<string, HistogramSeries>
  /** the same series as #byLabel, in creation order, which is the order prom-client exposes */
  readonly #series: HistogramSeries[]

  constructor (options: LabelledHistogramOptions) {
    checkNames(options.name, [options.labelName])
    if (options.labelName === 'le') throw new TypeError(`${options.name}: 'le' is the bucket label of a histogram`)
    const { buckets } = options
    if (buckets.length === 0) throw new TypeError(`${options.name}: at least one bucket bound is needed`)
    for (let i = 0; i < buckets.length; i++) {
      if (!Number.isFinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
        throw new TypeError(`${options.name}: bucket bounds must be finite and strictly increasing, got ${buckets.join(', ')}`)
      }
    }
    this.name = options.name
    this.help = options.help
    this.#labelName = options.labelName
    this.#bounds = Float64Array.from(buckets)
    this.#byLabel = new Map()
    this.#series = []
    registerMetric(options.registry, this)
  }

  /**
   * HOT PATH: once per request. A linear scan, not a binary search: latencies sit in the first
   * few buckets, where a scan ends after 3–6 predictable compares. A value that is not finite
   * is dropped rather than thrown (prom-client throws): metrics must not fail a response, and
   * one NaN would make `_sum` NaN for the life of the worker.
   */
  observe (label: string, value: number): void {
    if (!Number.isFinite(value)) return
    let series = this.#byLabel.get(label)
    if (series === undefined) series = this.#add(label)
    const bounds = this.#bounds
    const n = bounds.length
    let i = 0
    // `le` semantics: a value equal to a bound belongs to that bound's bucket
    while (i < n && value > bounds[i]) i++
    series.counts[i] += 1
    series.sum += value
    series.count += 1
  }

  async get (): Promise<MetricSnapshot> {
    const bucketName = `${this.name}_bucket`
    const sumName = `${this.name}_sum`
    const countName = `${this.name}_count`
    const labelName = this.#labelName
    const bounds = this.#bounds
    const values: Sample[] = []
    // per series: each bound, +Inf, _sum, _count, with `le` before the label, as prom-client
    // orders them (the Registry prints labels in key order)
    for (const series of this.#series) {
      const label = series.labels[labelName]
      let cumulative = 0
      for (let i = 0; i < bounds.length; i++) {
        cumulative += series.counts[i]
        values.push({ value: cumulative, labels: { le: bounds[i], [labelName]: label }, metricName: bucketName })
      }
      values.push({ value: series.count, labels: { le: '+Inf', [labelName]: label }, metricName: bucketName })
      values.push({ value: series.sum, labels: series.labels, metricName: sumName })
      values.push({ value: series.count, labels: series.labels, metricName: countName })
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  reset (): void {
    this.#byLabel.clear()
    this.#series.length = 0
  }

  #add (label: string): HistogramSeries {
    const series = new HistogramSeries(Object.freeze({ [this.#labelName]: label }), this.#bounds.length)
    this.#byLabel.set(label, series)
    this.#series.push(series)
    return series
  }
}
