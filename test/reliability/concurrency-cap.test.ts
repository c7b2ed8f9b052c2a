// A partner's max_in_flight: beyond it RelayKey answers 503 circuit_open with Retry-After at
// once, instead of queueing requests behind a slow partner; the slots free up as answers end,
// and a client still uploading a body holds none.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ServerResponse } from 'node:http'
import { openRawConnection } from '../helpers/raw-connection.js'
import { ReliabilityBench, call, metricsText, partnerWith, uniqueSlug } from './reliability-harness.js'

describe('concurrency cap', () => {
  const bench = new ReliabilityBench({ workers: 2 })
  before(async () => { await bench.start() })
  after(async () => { await bench.stop() })

  it('answers 503 with Retry-After beyond max_in_flight per node, and serves again once answers end', async () => {
    const rk = bench.rk
    const p = await bench.partner()
    const held: ServerResponse[] = []
    p.handle((_req, res) => { held.push(res) })
    const s = uniqueSlug('cap')
    // two workers, four per node: two each
    const setup = await partnerWith(rk, p.url, s, { circuit_breaker: { max_in_flight: 4 } })
    const pending = Array.from({ length: 10 }, () => call(rk, setup.key, `${s}/slow`))
    for (let i = 0; i < 50 && held.length < 4; i++) await sleep(50)
    await sleep(200) // anything beyond the cap would have arrived by now
    assert.equal(held.length, 4)
    for (const res of held) res.end('done')
    const seen = await Promise.all(pending)
    assert.equal(seen.filter((r) => r.status === 200).length, 4)
    const refused = seen.filter((r) => r.status === 503)
    assert.equal(refused.length, 6)
    for (const r of refused) {
      assert.equal(r.code, 'circuit_open')
      assert.equal(r.headers['retry-after'], '1')
    }
    assert.equal(p.received.length, 4)
    p.handle((_req, res) => { res.end('fast') })
    // one at a time: kept-alive connections stick to a worker, and each worker holds half the cap
    for (let i = 0; i < 4; i++) assert.equal((await call(rk, setup.key, `${s}/fast`)).status, 200)
    const metrics = await metricsText(rk)
    assert.match(metrics, new RegExp(`^relaykey_concurrency_refusals_total\\{partner="${s}"\\} 6$`, 'm'))
    assert.match(metrics, new RegExp(`^relaykey_upstream_in_flight\\{partner="${s}"\\} 0$`, 'm'))
  })
  it('a client still sending a body RelayKey buffers holds no slot: slow uploads cannot starve other customers', async () => {
    const rk = bench.rk
    const p = await bench.partner()
    p.handle((_req, res) => { res.end('ok') })
    const s = uniqueSlug('slowup')
    // two workers, one slot each
    const setup = await partnerWith(rk, p.url, s, { circuit_breaker: { max_in_flight: 2 } })
    // PUT is idempotent and 1,000 bytes fit the retry buffer: RelayKey reads it all before the
    // first attempt; these clients send 3 bytes and stall
    const port = Number(new URL(rk.proxyUrl).port)
    const stalled = await Promise.all(Array.from({ length: 6 }, async () => {
      const conn = await openRawConnection(port)
      conn.socket.write(`PUT /proxy/${s}/upload HTTP/1.1\r\nHost: relaykey\r\nX-RelayKey: ${setup.key}\r\nContent-Length: 1000\r\n\r\nabc`)
      return conn
    }))
    try {
      await sleep(300)
      for (let i = 0; i < 6; i++) {
        const seen = await call(rk, setup.key, `${s}/other`)
        assert.equal(seen.status, 200, `request ${i}: ${seen.text}`)
      }
      assert.equal(p.received.filter((r) => r.url === '/upload').length, 0)
    } finally {
      for (const conn of stalled) conn.destroy()
    }
  })
})
