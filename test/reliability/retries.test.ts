// Partner retries as a user sees them: which requests are sent again, how the body is replayed,
// Retry-After under and over the cap, the request_ms deadline over all attempts, connection
// failures and a reused keep-alive socket the partner had closed. Each test has its own partner.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type { RelayKeyProcess } from '../helpers/relaykey-process.js'
import type { MockPartner } from '../helpers/mock-partner.js'
import { freePort } from '../helpers/ports.js'
import { ReliabilityBench, auditOf, call, partnerWith, uniqueSlug } from './reliability-harness.js'

describe('retries', () => {
  const bench = new ReliabilityBench()
  let rk: RelayKeyProcess
  before(async () => {
    await bench.start()
    rk = bench.rk
  })
  after(() => bench.stop())
  const partner = (): Promise<MockPartner> => bench.partner()
  /** answers `statuses` in turn (the last one from then on), each tagged with its attempt number */
  function answering (p: MockPartner, ...statuses: Array<number | [number, Record<string, string>]>): void {
    let n = 0
    p.handle((_req, res) => {
      const answer = statuses[Math.min(n++, statuses.length - 1)]!
      const [status, headers] = typeof answer === 'number' ? [answer, {}] : answer
      res.writeHead(status, { 'x-attempt': String(n), ...headers })
      res.end(`answer ${n}`)
    })
  }

  it('a GET the partner answers 503 is sent again, and the client sees only the retry\'s answer', async () => {
    const p = await partner()
    answering(p, 503, 200)
    const s = uniqueSlug('get')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 3, base_delay_ms: 10, max_delay_ms: 50 } })
    const seen = await call(rk, setup.key, `${s}/v1/things`)
    assert.equal(seen.status, 200)
    assert.equal(seen.text, 'answer 2')
    assert.equal(seen.headers['x-attempt'], '2')
    assert.equal(p.received.length, 2)
    const event = await auditOf(rk, setup.keyId, seen)
    assert.equal(event.attempts, 2)
    assert.equal(event.outcome, 'forwarded')
    assert.equal(event.status, 200)
  })

  it('a POST without Idempotency-Key is sent once, whatever the partner answers', async () => {
    const p = await partner()
    answering(p, 503, 200)
    const s = uniqueSlug('post')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 3, base_delay_ms: 10, max_delay_ms: 50 } })
    const seen = await call(rk, setup.key, `${s}/v1/payments`, { method: 'POST', body: '{"amount":5}', headers: { 'content-type': 'application/json' } })
    assert.equal(seen.status, 503)
    assert.equal(seen.text, 'answer 1')
    assert.equal(p.received.length, 1)
    assert.equal((await auditOf(rk, setup.keyId, seen)).attempts, 1)
  })

  it('a POST with Idempotency-Key is retried with the same body, byte for byte', async () => {
    const p = await partner()
    answering(p, 502, 200)
    const s = uniqueSlug('idem')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 50 } })
    const body = Buffer.from(Array.from({ length: 40_000 }, (_, i) => i % 251))
    const seen = await call(rk, setup.key, `${s}/v1/payments`, { method: 'POST', body, headers: { 'idempotency-key': 'order-17', 'content-type': 'application/octet-stream' } })
    assert.equal(seen.status, 200)
    assert.equal(p.received.length, 2)
    for (const r of p.received) {
      assert.equal(createHash('sha256').update(r.body).digest('hex'), createHash('sha256').update(body).digest('hex'))
      assert.equal(r.headers['idempotency-key'], 'order-17')
      assert.equal(r.headers['content-length'], String(body.length))
    }
    const event = await auditOf(rk, setup.keyId, seen)
    assert.equal(event.attempts, 2)
    assert.equal(event.bytes_in, body.length) // the client's bytes, not the sum over attempts
  })

  it('a body over the replay buffer (64 KiB) streams once and is not retried', async () => {
    const p = await partner()
    answering(p, 503, 200)
    const s = uniqueSlug('big')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 3, base_delay_ms: 10, max_delay_ms: 50 } })
    const body = Buffer.alloc(64 * 1024 + 1, 7)
    const seen = await call(rk, setup.key, `${s}/v1/files`, { method: 'PUT', body })
    assert.equal(seen.status, 503)
    assert.equal(p.received.length, 1)
    assert.equal(p.received[0]!.body.length, body.length)
  })

  it('Retry-After within max_delay_ms is waited for; above it the partner\'s answer passes through', async () => {
    const p = await partner()
    answering(p, [503, { 'retry-after': '1' }], 200)
    const s = uniqueSlug('ra')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 1500 } })
    const waited = await call(rk, setup.key, `${s}/x`)
    assert.equal(waited.status, 200)
    assert.ok(waited.elapsedMs >= 950, `waited ${waited.elapsedMs} ms for Retry-After: 1`)
    assert.equal(p.received.length, 2)

    const q = await partner()
    answering(q, [503, { 'retry-after': '30' }], 200)
    const t = uniqueSlug('ra-cap')
    const capped = await partnerWith(rk, q.url, t, { retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 1500 } })
    const passed = await call(rk, capped.key, `${t}/x`)
    assert.equal(passed.status, 503)
    assert.equal(passed.headers['retry-after'], '30')
    assert.equal(q.received.length, 1)
    assert.ok(passed.elapsedMs < 1000)
  })

  it('respect_retry_after false: the partner\'s Retry-After is ignored and backoff applies', async () => {
    const p = await partner()
    answering(p, [503, { 'retry-after': '30' }], 200)
    const s = uniqueSlug('ra-off')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 20, respect_retry_after: false } })
    const seen = await call(rk, setup.key, `${s}/x`)
    assert.equal(seen.status, 200)
    assert.ok(seen.elapsedMs < 1000)
  })

  it('timeouts.request_ms bounds all attempts together: 504 at the deadline, not max_attempts × request_ms', async () => {
    const p = await partner()
    p.handle((_req, res) => { setTimeout(() => { res.writeHead(503); res.end() }, 400) })
    const s = uniqueSlug('deadline')
    const setup = await partnerWith(rk, p.url, s, {
      retry: { max_attempts: 10, base_delay_ms: 10, max_delay_ms: 20 },
      timeouts: { request_ms: 1000 },
    })
    // attempts at ~0, ~410 and ~820 ms; the third has what is left of the second and times out
    const seen = await call(rk, setup.key, `${s}/x`)
    assert.equal(seen.status, 504)
    assert.equal(seen.code, 'upstream_timeout')
    assert.ok(seen.elapsedMs >= 950 && seen.elapsedMs < 1800, `answered after ${seen.elapsedMs} ms`)
    assert.equal(p.received.length, 3)
    const event = await auditOf(rk, setup.keyId, seen)
    assert.equal(event.attempts, 3)
    assert.equal(event.outcome, 'upstream_timeout')
  })

  it('draining a retried answer counts against request_ms: a partner trickling its 503 body cannot hold the client', async () => {
    const p = await partner()
    p.handle((_req, res) => {
      res.writeHead(503, { 'content-length': '40' })
      let sent = 0
      const drip = setInterval(() => {
        if (res.destroyed || ++sent > 40) return clearInterval(drip)
        res.write('.')
        if (sent === 40) res.end()
      }, 100)
    })
    const s = uniqueSlug('drip')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 3, base_delay_ms: 1, max_delay_ms: 2 }, timeouts: { request_ms: 1000 } })
    const seen = await call(rk, setup.key, `${s}/x`)
    assert.equal(seen.status, 504)
    assert.equal(seen.code, 'upstream_timeout')
    assert.ok(seen.elapsedMs < 2000, `answered after ${seen.elapsedMs} ms, not after the 4 s drip`)
  })

  it('a retried answer too large to drain is dropped with its connection, and the retry goes ahead', async () => {
    const p = await partner()
    let n = 0
    p.handle((_req, res) => {
      if (++n === 1) {
        res.writeHead(503, { 'content-length': String(512 * 1024) })
        res.end(Buffer.alloc(512 * 1024, 1))
        return
      }
      res.end('second time lucky')
    })
    const s = uniqueSlug('bigdrain')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 2, base_delay_ms: 1, max_delay_ms: 2 } })
    const seen = await call(rk, setup.key, `${s}/x`)
    assert.equal(seen.status, 200)
    assert.equal(seen.text, 'second time lucky')
    const event = await auditOf(rk, setup.keyId, seen)
    assert.equal(event.attempts, 2)
    assert.equal(event.bytes_out, 'second time lucky'.length) // nothing of the drained answer
  })

  it('a refused connection is retried up to max_attempts, then 502 upstream_error', async () => {
    const closedPort = await freePort()
    const s = uniqueSlug('refused')
    const setup = await partnerWith(rk, `http://127.0.0.1:${closedPort}`, s, { retry: { max_attempts: 3, base_delay_ms: 5, max_delay_ms: 10 } })
    const seen = await call(rk, setup.key, `${s}/x`)
    assert.equal(seen.status, 502)
    assert.equal(seen.code, 'upstream_error')
    const event = await auditOf(rk, setup.keyId, seen)
    assert.equal(event.attempts, 3)
    assert.equal(event.outcome, 'upstream_error')
  })

  it('a reused keep-alive socket the partner closed is retried on a fresh connection', async () => {
    const p = await partner()
    let n = 0
    p.handle((req, res) => {
      // the second request arrives on the first one's kept-alive socket: drop it unanswered
      if (++n === 2) return req.socket.destroy()
      res.end(`answer ${n}`)
    })
    const s = uniqueSlug('reuse')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 2, base_delay_ms: 5, max_delay_ms: 10 } })
    assert.equal((await call(rk, setup.key, `${s}/x`)).text, 'answer 1')
    const seen = await call(rk, setup.key, `${s}/x`)
    assert.equal(seen.status, 200)
    assert.equal(seen.text, 'answer 3')
    assert.equal((await auditOf(rk, setup.keyId, seen)).attempts, 2)
  })

  it('a partner-wide outage costs at most the retry budget in extra upstream attempts', async () => {
    const p = await partner()
    answering(p, 503)
    const s = uniqueSlug('budget')
    const setup = await partnerWith(rk, p.url, s, {
      retry: { max_attempts: 3, base_delay_ms: 1, max_delay_ms: 2, budget_percent: 20, budget_min_per_second: 0 },
      circuit_breaker: { failure_threshold: 10_000 },
    })
    const requests = 150
    for (let wave = 0; wave < requests / 15; wave++) {
      const seen = await Promise.all(Array.from({ length: 15 }, () => call(rk, setup.key, `${s}/x`)))
      for (const r of seen) assert.equal(r.status, 503)
    }
    // without a budget: 3 × 150 = 450 attempts
    const extra = p.received.length - requests
    assert.ok(extra <= requests * 0.2 + 1, `${extra} retries for ${requests} requests`)
    assert.ok(extra >= requests * 0.1, `the budget is used: ${extra} retries`)
    let usage = await rk.admin('GET', `/admin/usage?key_id=${setup.keyId}`)
    for (let i = 0; i < 50 && usage.body.requests < requests; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      usage = await rk.admin('GET', `/admin/usage?key_id=${setup.keyId}`)
    }
    assert.equal(usage.body.requests, requests)
    assert.equal(usage.body.retried, extra)
  })
})
