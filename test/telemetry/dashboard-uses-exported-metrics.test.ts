// The Grafana dashboard in docs/ queries only metrics RelayKey exports.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { GatewayMetrics } from '../../src/telemetry/gateway-metrics.js'

const DASHBOARD = new URL('../../../docs/grafana/relaykey-dashboard.json', import.meta.url)

describe('Grafana dashboard', () => {
  it('uses only exported metric names', async () => {
    const metrics = new GatewayMetrics({ keyCache: () => ({ hits: 0, misses: 0, size: 0 }), reliability: () => [], audit: () => null })
    metrics.requestFinished('acme', 'forwarded', 0.01)
    metrics.upstreamResponded('acme', 200, 0.01)
    const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name))
    const text = readFileSync(DASHBOARD, 'utf8')
    const used = new Set([...text.matchAll(/relaykey_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')))
    assert.ok(used.size >= 8)
    for (const name of used) assert.ok(exported.has(name), `${name} is not exported`)
  })
})
