// A counter with one or two labels whose increment is two Map lookups and an add: no label
// object, no key string, no allocation once a series exists. prom-client's Registry reads it at
// scrape time, and AggregatorRegistry sums it across workers like a prom-client Counter.
import type { Registry } from 'prom-client'
import { checkNames, registerMetric, type MetricSnapshot, type RegistryMetric, type Sample } from './registry-metric.js'

/** one series: its label set, fixed at creation, and its running total */
class CounterSeries {
  readonly labels: Readonly<Record<string, string>>
  // starts here, not in the constructor: a field tsc declares without a value is first defined
  // as undefined, and V8 then boxes a number written to it once the count outgrows a small int
  value = 0

  constructor (labels: Readonly<Record<string, string>>) {
    this.labels = labels
  }
}

export interface LabelledCounterOptions {
  name: string
  help: string
  /** one or two names; values are passed to inc() in this order */
  labelNames: readonly [string] | readonly [string, string]
  registry: Registry
}

/**
 * Series are found by label values, first label then second; with one label every series
 * sits under the second key '':
 *
 *   #byFirst: Map  first value ──► Map  second value ──► CounterSeries { labels, value }
 *                                                          ▲
 *   #series:  [ CounterSeries, CounterSeries, … ] ─────────┘  the same objects, in creation
 *                                                             order, which is the order
 *                                                             prom-client exposes them in
 */
export class LabelledCounter implements RegistryMetric {
  name: string
  readonly help: string
  readonly type = 'counter'
  readonly aggregator = 'sum'
  readonly #labelNames: readonly string[]
  readonly #byFirst: Map<string, Map<string, CounterSeries>>
  readonly #series: CounterSeries[]

  constructor (options: LabelledCounterOptions) {
    checkNames(options.name, options.labelNames)
    this.name = options.name
    this.help = options.help
    this.#labelNames = Object.freeze([...options.labelNames])
    this.#byFirst = new Map()
    this.#series = []
    registerMetric(options.registry, this)
  }

  /**
   * HOT PATH: once per request. Two Map.get on strings whose hashes V8 caches, then `+=` on a
   * number field; the miss that creates a series is out of line in #add so this stays small
   * enough to inline.
   */
  inc (first: string, second = ''): void {
    const bySecond = this.#byFirst.get(first)
    const series = bySecond === undefined ? undefined : bySecond.get(second)
    if (series === undefined) this.#add(first, second).value += 1
    else series.value += 1
  }

  async get (): Promise<MetricSnapshot> {
    // copies, so a snapshot held while requests keep counting stays what was read
    const values: Sample[] = []
    for (const series of this.#series) values.push({ value: series.value, labels: series.labels })
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  reset (): void {
    this.#byFirst.clear()
    this.#series.length = 0
  }

  #add (first: string, second: string): CounterSeries {
    let bySecond = this.#byFirst.get(first)
    if (bySecond === undefined) {
      bySecond = new Map()
      this.#byFirst.set(first, bySecond)
    }
    const names = this.#labelNames
    // label values in labelNames order: the Registry prints labels in key order
    const labels: Record<string, string> = { [names[0]]: first }
    if (names.length === 2) labels[names[1]] = second
    const series = new CounterSeries(Object.freeze(labels))
    bySecond.set(second, series)
    this.#series.push(series)
    return series
  }
}
