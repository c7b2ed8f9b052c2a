// The Grafana dashboard in docs/ queries only metrics RelayKey exports, and every query is
// narrowed by its `instance` variable (multi-select, All included).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { GatewayMetrics } from '../../src/telemetry/gateway-metrics.js'
import { processMetrics } from '../../src/telemetry/cluster-metrics.js'
import { LeaseStats } from '../../src/limits/lease-stats.js'

const DASHBOARD = new URL('../../../docs/grafana/relaykey-dashboard.json', import.meta.url)
const INSTANCE_MATCHER = 'instance=~"$instance"'

interface Dashboard {
  templating: { list: Array<Record<string, unknown>> }
  panels: Array<{ title: string; targets?: Array<{ expr: string }> }>
}

function dashboard (): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard
}

function targets (d: Dashboard): Array<{ panel: string; expr: string }> {
  return d.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })))
}

/** a fresh worker's metrics, before any traffic: name → type and whether it has a series yet */
async function exportedMetrics (): Promise<Map<string, { type: string; present: boolean }>> {
  const metrics = new GatewayMetrics({
    keyCache: () => ({ hits: 0, misses: 0, size: 0 }),
    signedBodies: () => 0,
    reliability: () => [],
    audit: () => null,
    leases: { stats: new LeaseStats(), heldUnits: () => new Map() },
  })
  const json = [...await metrics.registry.getMetricsAsJSON(), ...await processMetrics().getMetricsAsJSON()]
  return new Map(json.map((m) => [m.name, { type: String(m.type), present: m.values.length > 0 }]))
}

// Words of PromQL that are not metric names: a name followed by '(' is a function, the
// aggregation operators and other keywords are reserved (`sum by (le) (...)`), and the label
// list after a grouping keyword is skipped.
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right'])
const KEYWORDS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio',
  'bool', 'and', 'or', 'unless', 'offset', 'atan2', 'inf', 'nan'])
const STRING = String.raw`"(?:[^"\\]|\\.)*"`
const MATCHERS = String.raw`\{(?:${STRING}|[^}"])*\}`

interface Selector { name: string; matchers: Array<{ label: string; op: string; value: string }> }

/**
 * The vector selectors of a PromQL expression: each metric name with its `{...}` matchers. A
 * small scan, enough for dashboard queries: strings, ranges and durations (`[5m]`, `offset 5m`),
 * numbers, function and aggregation names and grouping label lists (`by (le)`) are not
 * selectors; a selector with no name (`{__name__=~"..."}`) comes with the name ''.
 */
function selectors (expr: string): Selector[] {
  const out: Selector[] = []
  const token = new RegExp(String.raw`${STRING}|\[[^\]]*\]|${MATCHERS}|[A-Za-z_:][A-Za-z0-9_:]*|\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-z]*|\S`, 'g')
  const matchersAfter = new RegExp(String.raw`^\s*(${MATCHERS})`)
  let groupingList = false
  for (let match = token.exec(expr); match !== null; match = token.exec(expr)) {
    const word = match[0]
    if (groupingList && word === '(') {
      token.lastIndex = expr.indexOf(')', token.lastIndex) + 1
      groupingList = false
      continue
    }
    groupingList = false
    if (word.startsWith('{')) {
      out.push({ name: '', matchers: parseMatchers(word) })
    } else if (/^[A-Za-z_:]/.test(word)) {
      const rest = expr.slice(token.lastIndex)
      if (GROUPING.has(word)) groupingList = true
      else if (!KEYWORDS.has(word.toLowerCase()) && !/^\s*\(/.test(rest)) {
        const braces = matchersAfter.exec(rest)
        if (braces !== null) token.lastIndex += braces[0].length
        out.push({ name: word, matchers: braces === null ? [] : parseMatchers(braces[1]!) })
      }
    }
  }
  return out
}

function parseMatchers (braces: string): Selector['matchers'] {
  const one = new RegExp(String.raw`\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(${STRING})\s*,?`, 'gy')
  const inner = braces.slice(1, -1)
  const out: Selector['matchers'] = []
  let read = 0
  for (let m = one.exec(inner); m !== null; m = one.exec(inner)) {
    out.push({ label: m[1]!, op: m[2]!, value: JSON.parse(m[3]!) as string })
    read = one.lastIndex
  }
  assert.equal(inner.slice(read).trim(), '', `every matcher of ${braces} read`)
  return out
}

/** a series name's metric: a histogram's _bucket, _sum and _count belong to it */
function metricOf (series: string, exported: Map<string, { type: string }>): string {
  const base = series.replace(/_(bucket|sum|count)$/, '')
  return base !== series && exported.get(base)?.type === 'histogram' ? base : series
}

describe('Grafana dashboard', () => {
  it('uses only exported metric names', async () => {
    const exported = await exportedMetrics()
    const used = new Set(targets(dashboard()).flatMap((t) => selectors(t.expr).map((s) => metricOf(s.name, exported))))
    assert.ok(used.size >= 8, [...used].join(' '))
    for (const name of used) assert.ok(exported.has(name), `${name} is not exported`)
  })

  it('has an instance variable: multi-select with All, its values from a metric every node exports', async () => {
    const variable = dashboard().templating.list.find((v) => v.name === 'instance')
    assert.ok(variable !== undefined, 'templating variable instance')
    assert.equal(variable.type, 'query')
    assert.equal(variable.multi, true)
    assert.equal(variable.includeAll, true)
    const query = typeof variable.query === 'string' ? variable.query : (variable.query as { query: string }).query
    const source = /^label_values\((\w+),\s*instance\)$/.exec(query)
    assert.ok(source !== null, query)
    // a series from the moment a worker starts, traffic or not, so every node is listed
    const exported = await exportedMetrics()
    assert.equal(exported.get(source[1]!)?.present, true, `${source[1]} is exported by every worker before any traffic`)
    assert.ok(source[1]!.startsWith('relaykey_'), 'RelayKey\'s own, so other jobs\' instances are not offered')
  })

  it('filters every selector of every query by $instance', () => {
    const all = targets(dashboard())
    assert.ok(all.length > 0)
    for (const { panel, expr } of all) {
      const found = selectors(expr)
      assert.ok(found.length > 0, `${panel}: ${expr}`)
      for (const s of found) {
        const filtered = s.matchers.some((m) => m.label === 'instance' && m.op === '=~' && m.value === '$instance')
        assert.ok(filtered, `${panel}: ${s.name || '(no name)'} in ${expr} lacks ${INSTANCE_MATCHER}`)
      }
    }
  })

  it('finds the selectors of a query (the scan the checks above rely on)', () => {
    const expr = 'histogram_quantile(0.99, sum by (le, partner) (rate(a_bucket{x="1,}", instance=~"$instance"}[5m:1m]))) / on (partner) group_left b ' +
      '+ sum without (c) (c_total offset 5m) > bool 1e3 or {__name__="d"}'
    assert.deepEqual(selectors(expr), [
      { name: 'a_bucket', matchers: [{ label: 'x', op: '=', value: '1,}' }, { label: 'instance', op: '=~', value: '$instance' }] },
      { name: 'b', matchers: [] },
      { name: 'c_total', matchers: [] },
      { name: '', matchers: [{ label: '__name__', op: '=', value: 'd' }] },
    ])
  })
})
