// Circuit breakers as a user sees them: a failing partner is left alone for open_ms (503
// circuit_open with Retry-After, no upstream contact), one probe then decides; a credential the
// vendor refuses or that keeps failing is skipped while another one works.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import type { RelayKeyProcess } from '../helpers/relaykey-process.js'
import type { MockPartner } from '../helpers/mock-partner.js'
import { request } from 'undici'
import { ReliabilityBench, auditOf, call, metricsText, partnerWith, uniqueSlug, type Seen } from './reliability-harness.js'

describe('circuit breakers', () => {
  const bench = new ReliabilityBench()
  let rk: RelayKeyProcess
  before(async () => {
    await bench.start()
    rk = bench.rk
  })
  after(() => bench.stop())
  const partner = (): Promise<MockPartner> => bench.partner()
  async function secondCredential (slug: string, secret: string): Promise<string> {
    const created = await rk.admin('POST', `/admin/partners/${slug}/credentials`, {
      name: 'second', environment: 'production', secret: { provider: 'inline', value: secret },
    })
    assert.equal(created.status, 201)
    return created.body.id
  }

  it('an answer the partner cuts mid-body is audited as upstream_error (not a success), refunded, and counted by the breaker', async () => {
    const p = await partner()
    p.handle((_req, res) => {
      // promises 1,000 bytes, sends 100, and drops the connection
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' })
      res.write('x'.repeat(100), () => setTimeout(() => res.socket?.destroy(), 20))
    })
    const s = uniqueSlug('cut')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 2, open_ms: 60_000 } })
    const policy = await rk.admin('PATCH', `/admin/policies/${setup.policyId}`, { budget: { monthly: 100 } })
    assert.equal(policy.status, 200, JSON.stringify(policy.body))
    const cut: Seen[] = []
    for (let i = 0; i < 2; i++) {
      // a connection of its own each time: RelayKey breaks the one a cut answer was on
      const res = await request(`${rk.proxyUrl}/proxy/${s}/report`, { headers: { 'x-relaykey': setup.key }, reset: true })
      assert.equal(res.statusCode, 200)
      await assert.rejects(res.body.text(), 'the client sees the answer break off')
      cut.push({ status: res.statusCode, headers: res.headers, text: '', code: undefined, elapsedMs: 0 })
    }
    for (const seen of cut) {
      const event = await auditOf(rk, setup.keyId, seen)
      assert.equal(event.outcome, 'upstream_error')
      assert.equal(event.status, 200)
      assert.equal(event.cost, 0)
    }
    // two cut answers at a failure_threshold of 2: the breaker is open
    const refused = await call(rk, setup.key, `${s}/report`)
    assert.equal(refused.code, 'circuit_open')
    assert.equal(p.received.length, 2)
    const usage = await rk.admin('GET', `/admin/usage?key_id=${setup.keyId}`)
    assert.equal(usage.body.upstream_errors, 2)
    assert.equal(usage.body.budget.used, 0)
  })

  it('a request whose first attempt was a retried 500 and whose retry met a 503 leaves the breaker that 503 opened open', async () => {
    const p = await partner()
    p.handle((_req, res) => {
      res.writeHead(p.received.length === 1 ? 500 : 503)
      res.end()
    })
    const s = uniqueSlug('mixed')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 2, base_delay_ms: 1, max_delay_ms: 2, on_status: [500, 503] }, circuit_breaker: { failure_threshold: 1, open_ms: 60_000 } })
    assert.equal((await call(rk, setup.key, `${s}/x`)).status, 503)
    assert.equal(p.received.length, 2)
    const refused = await call(rk, setup.key, `${s}/x`)
    assert.equal(refused.code, 'circuit_open', 'the first attempt\'s 500 closed the breaker again at the end of the request')
  })

  it('opens after failure_threshold failures, refuses without calling the partner, probes after open_ms, closes', async () => {
    const p = await partner()
    let healthy = false
    p.handle((_req, res) => { res.writeHead(healthy ? 200 : 503); res.end() })
    const s = uniqueSlug('open')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 3, open_ms: 1000 } })
    for (let i = 0; i < 3; i++) assert.equal((await call(rk, setup.key, `${s}/x`)).status, 503)
    const refused = await call(rk, setup.key, `${s}/x`)
    assert.equal(refused.status, 503)
    assert.equal(refused.code, 'circuit_open')
    assert.equal(refused.headers['retry-after'], '1')
    assert.equal(p.received.length, 3)
    assert.equal((await auditOf(rk, setup.keyId, refused)).outcome, 'circuit_open')
    assert.match(await metricsText(rk), new RegExp(`^relaykey_circuit_open\\{partner="${s}",scope="partner"\\} 1$`, 'm'))

    healthy = true
    await sleep(1100)
    // due for a probe: no longer refusing, so no longer counted as open (an idle partner stops alerting)
    assert.match(await metricsText(rk), new RegExp(`^relaykey_circuit_open\\{partner="${s}",scope="partner"\\} 0$`, 'm'))
    assert.equal((await call(rk, setup.key, `${s}/x`)).status, 200) // the probe
    for (let i = 0; i < 3; i++) assert.equal((await call(rk, setup.key, `${s}/x`)).status, 200)
    assert.equal(p.received.length, 7)
    const metrics = await metricsText(rk)
    assert.match(metrics, new RegExp(`^relaykey_circuit_open\\{partner="${s}",scope="partner"\\} 0$`, 'm'))
    // its only credential saw the same failures and opened with it
    assert.match(metrics, new RegExp(`^relaykey_circuit_openings_total\\{partner="${s}",scope="partner"\\} 1$`, 'm'))
    assert.match(metrics, new RegExp(`^relaykey_circuit_openings_total\\{partner="${s}",scope="credential"\\} 1$`, 'm'))
  })

  it('a failed probe opens it again: one upstream call per open_ms while the partner is down', async () => {
    const p = await partner()
    p.handle((_req, res) => { res.writeHead(502); res.end() })
    const s = uniqueSlug('probe')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 2, open_ms: 500 } })
    for (let i = 0; i < 2; i++) await call(rk, setup.key, `${s}/x`)
    assert.equal((await call(rk, setup.key, `${s}/x`)).code, 'circuit_open')
    await sleep(600)
    // concurrent requests when it is due: exactly one of them probes
    const wave = await Promise.all(Array.from({ length: 8 }, () => call(rk, setup.key, `${s}/x`)))
    assert.equal(wave.filter((r) => r.status === 502).length, 1)
    assert.equal(wave.filter((r) => r.code === 'circuit_open').length, 7)
    assert.equal(p.received.length, 3)
    assert.equal((await call(rk, setup.key, `${s}/x`)).code, 'circuit_open')
    assert.equal(p.received.length, 3)
  })

  it('a credential the vendor answers 401 for is failed over at once, and skipped once a second key sees the same; one key alone cannot take it out', async () => {
    const p = await partner()
    p.handle((req, res) => {
      res.writeHead(req.headers['x-app-token'] === 'revoked-at-vendor' ? 401 : 200)
      res.end(String(req.headers['x-app-token']))
    })
    const s = uniqueSlug('reject')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 20 } })
    const revoked = await secondCredential(s, 'revoked-at-vendor')
    const byToken = (token: string): number => p.received.filter((r) => r.headers['x-app-token'] === token).length
    const seen = []
    // one key: every answer is the good credential's, and the other stays in rotation
    for (let i = 0; i < 6; i++) seen.push(await call(rk, setup.key, `${s}/x`))
    for (const r of seen) {
      assert.equal(r.status, 200)
      assert.equal(r.text, 'upstream-secret-value')
    }
    const triedByOneKey = byToken('revoked-at-vendor')
    assert.ok(triedByOneKey >= 2, `one key's 401s took the credential out of rotation (tried ${triedByOneKey} times)`)
    const events = []
    for (const r of seen) events.push(await auditOf(rk, setup.keyId, r))
    const failedOver = events.filter((e) => e.attempts === 2)
    assert.equal(failedOver.length, triedByOneKey)
    assert.equal(failedOver[0]!.credential_id, setup.credentialId) // the audit names the credential that answered
    assert.ok(events.every((e) => e.credential_id !== revoked))
    // a second key meets the same 401: now the credential is out
    const second = await rk.admin('POST', '/admin/keys', { name: 'second key', policy: setup.policyId, environment: 'production' })
    assert.equal(second.status, 201)
    for (let i = 0; i < 3 && byToken('revoked-at-vendor') === triedByOneKey; i++) assert.equal((await call(rk, second.body.key, `${s}/x`)).status, 200)
    assert.equal(byToken('revoked-at-vendor'), triedByOneKey + 1)
    for (let i = 0; i < 6; i++) assert.equal((await call(rk, i % 2 === 0 ? setup.key : second.body.key, `${s}/x`)).status, 200)
    assert.equal(byToken('revoked-at-vendor'), triedByOneKey + 1, 'skipped after two keys saw the 401')
  })

  it('a 500 is one request\'s answer, not the partner failing: ten of them do not open the breaker for everyone', async () => {
    const p = await partner()
    p.handle((req, res) => { res.writeHead(req.url!.startsWith('/broken') ? 500 : 200); res.end() })
    const s = uniqueSlug('fivehundred')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 3, open_ms: 60_000 } })
    for (let i = 0; i < 10; i++) assert.equal((await call(rk, setup.key, `${s}/broken/${i}`)).status, 500)
    assert.equal((await call(rk, setup.key, `${s}/fine`)).status, 200)
  })

  it('one key\'s requests failing (503) while other keys\' succeed do not open the partner\'s breaker', async () => {
    const p = await partner()
    p.handle((req, res) => { res.writeHead(req.url!.startsWith('/failing') ? 503 : 200); res.end() })
    const s = uniqueSlug('onekey')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 3, open_ms: 60_000 } })
    const other = await rk.admin('POST', '/admin/keys', { name: 'other key', policy: setup.policyId, environment: 'production' })
    for (let i = 0; i < 10; i++) {
      assert.equal((await call(rk, setup.key, `${s}/failing/${i}`)).status, 503)
      assert.equal((await call(rk, other.body.key, `${s}/fine/${i}`)).status, 200)
      assert.equal((await call(rk, other.body.key, `${s}/fine/${i}`)).status, 200)
    }
    assert.equal((await call(rk, other.body.key, `${s}/fine`)).status, 200)
  })

  it('an answer that opens the breaker is not retried into a 503 circuit_open: the client gets the partner\'s answer', async () => {
    const p = await partner()
    p.handle((_req, res) => { res.writeHead(503); res.end('partner says no') })
    const s = uniqueSlug('noretry')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 3, base_delay_ms: 1, max_delay_ms: 2 }, circuit_breaker: { failure_threshold: 1, open_ms: 60_000 } })
    const seen = await call(rk, setup.key, `${s}/x`)
    assert.equal(seen.status, 503)
    assert.equal(seen.text, 'partner says no')
    assert.equal(p.received.length, 1)
    assert.equal((await auditOf(rk, setup.keyId, seen)).attempts, 1)
    assert.equal((await call(rk, setup.key, `${s}/x`)).code, 'circuit_open')
  })

  it('a 403 on one resource fails over but does not take a working credential out of rotation', async () => {
    const p = await partner()
    p.handle((req, res) => { res.writeHead(req.url!.includes('/forbidden') ? 403 : 200); res.end() })
    const s = uniqueSlug('forbid')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 2, base_delay_ms: 1, max_delay_ms: 2 } })
    await secondCredential(s, 'second-account')
    const forbidden = await call(rk, setup.key, `${s}/forbidden`)
    assert.equal(forbidden.status, 403)
    assert.equal(p.received.length, 2) // tried with the other credential too
    for (let i = 0; i < 4; i++) assert.equal((await call(rk, setup.key, `${s}/fine`)).status, 200)
    const tokens = new Set(p.received.slice(2).map((r) => r.headers['x-app-token']))
    assert.deepEqual([...tokens].sort(), ['second-account', 'upstream-secret-value'])
  })

  it('the only credential answering 401 is not skipped: the vendor\'s answer passes through', async () => {
    const p = await partner()
    p.handle((_req, res) => { res.writeHead(401); res.end('who are you') })
    const s = uniqueSlug('only')
    const setup = await partnerWith(rk, p.url, s, {})
    for (let i = 0; i < 3; i++) {
      const seen = await call(rk, setup.key, `${s}/x`)
      assert.equal(seen.status, 401)
      assert.equal(seen.text, 'who are you')
    }
    assert.equal(p.received.length, 3)
  })

  it('a credential that keeps failing opens its own breaker; the other credential carries the traffic', async () => {
    const p = await partner()
    p.handle((req, res) => { res.writeHead(req.headers['x-app-token'] === 'broken-account' ? 503 : 200); res.end() })
    const s = uniqueSlug('cred')
    const setup = await partnerWith(rk, p.url, s, { retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 2, open_ms: 60_000 } })
    await secondCredential(s, 'broken-account')
    const statuses: number[] = []
    for (let i = 0; i < 12; i++) statuses.push((await call(rk, setup.key, `${s}/x`)).status)
    assert.equal(statuses.filter((st) => st === 503).length, 2)
    assert.deepEqual(statuses.slice(4), Array(8).fill(200))
    assert.equal(p.received.filter((r) => r.headers['x-app-token'] === 'broken-account').length, 2)
    assert.match(await metricsText(rk), new RegExp(`^relaykey_circuit_open\\{partner="${s}",scope="credential"\\} 1$`, 'm'))
  })
})
