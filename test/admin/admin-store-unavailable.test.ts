// The admin API when PostgreSQL stops answering: calls end with 503 governance_unavailable
// within RELAYKEY_ADMIN_TIMEOUT_MS instead of hanging, a write says it may still apply, and
// once the database answers again everything recovers by itself — even after every pooled
// connection (the primary's and the worker's) was stuck on a silent one, because a connection
// that waits RELAYKEY_PG_STALL_MS for an answer is closed and replaced. /ready fails as fast as a
// key lookup would. A database that refuses connections is a 503 too, never a 500.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startRelayKeyBehindFaultProxy, type RelayKeyBehindFaultProxy } from '../helpers/relaykey-behind-fault-proxy.js'
import type { RelayKeyProcess } from '../helpers/relaykey-process.js'
import type { TcpFaultProxy } from '../helpers/tcp-fault-proxy.js'

const ADMIN_TIMEOUT_MS = 600
const STALL_MS = 1_500
/** more than the primary's pool (8) and the worker's (4) */
const CONCURRENT = 12

interface Answer {
  status: number
  code: string | undefined
  message: string | undefined
  ms: number
}

async function admin (rk: RelayKeyProcess, method: string, path: string, body?: unknown): Promise<Answer> {
  const started = performance.now()
  const res = await rk.admin(method, path, body)
  const error = (res.body as { error?: { code: string; message: string } } | undefined)?.error
  return { status: res.status, code: error?.code, message: error?.message, ms: performance.now() - started }
}

async function proxied (rk: RelayKeyProcess, key: string): Promise<number> {
  const res = await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': key } })
  await res.body.dump()
  return res.statusCode
}

describe('the admin API when PostgreSQL stops answering', () => {
  let env: RelayKeyBehindFaultProxy
  let proxy: TcpFaultProxy
  let rk: RelayKeyProcess
  /** keys created before the outage and never used, so each needs a store lookup */
  const uncached: string[] = []

  before(async () => {
    env = await startRelayKeyBehindFaultProxy({
      RELAYKEY_ADMIN_TIMEOUT_MS: String(ADMIN_TIMEOUT_MS),
      RELAYKEY_PG_STALL_MS: String(STALL_MS),
      RELAYKEY_KEY_LOAD_TIMEOUT_MS: '500',
    })
    ;({ proxy, rk } = env)
    for (let i = 0; i < CONCURRENT + 1; i++) {
      const created = await rk.admin('POST', '/admin/keys', { name: `unused ${i}`, policy: env.setup.policyId, environment: 'production' })
      assert.equal(created.status, 201)
      uncached.push(created.body.key)
    }
    // open every pooled connection (queries at once need one each; /ready pings the worker's
    // store), then leave them idle for longer than the stall bound: a watchdog that idleness
    // set off must still be there when the next query goes out
    const opened = await Promise.all(Array.from({ length: CONCURRENT }, async () => {
      const res = await request(`${rk.proxyUrl}/ready`)
      await res.body.dump()
      return [(await admin(rk, 'GET', '/admin/policies')).status, res.statusCode]
    }))
    assert.deepEqual(new Set(opened.flat()), new Set([200]))
    await sleep(STALL_MS + 500)
  })

  after(async () => { await env.close() })

  it('answers 503 governance_unavailable within the admin timeout; a write may still apply', async () => {
    proxy.blackhole()
    const read = await admin(rk, 'GET', '/admin/partners')
    assert.equal(read.status, 503)
    assert.equal(read.code, 'governance_unavailable')
    assert.ok(read.ms >= ADMIN_TIMEOUT_MS - 50 && read.ms < ADMIN_TIMEOUT_MS + 1_000, `answered after ${Math.round(read.ms)} ms`)
    assert.doesNotMatch(read.message!, /may still have been applied/, 'a read changes nothing')

    const write = await admin(rk, 'POST', '/admin/policies', { name: 'written into the void' })
    assert.equal(write.status, 503)
    assert.equal(write.code, 'governance_unavailable')
    assert.match(write.message!, /may still have been applied: read it back before retrying/)
    assert.doesNotMatch(write.message!, /127\.0\.0\.1|postgres/i, 'no address or driver detail')

    // the proxy port's readiness probe is refused in the time a key lookup may take
    const started = performance.now()
    const ready = await request(`${rk.proxyUrl}/ready`)
    await ready.body.dump()
    assert.equal(ready.statusCode, 503)
    assert.ok(performance.now() - started < 500 + 1_000, `/ready answered after ${Math.round(performance.now() - started)} ms`)
  })

  it('recovers by itself once the database answers, though every pooled connection was stuck', async () => {
    // still black-holed: fill every pool slot of the primary and the worker with a silent query
    const reads = await Promise.all(Array.from({ length: CONCURRENT }, async () => await admin(rk, 'GET', '/admin/policies')))
    for (const r of reads) assert.equal(r.code, 'governance_unavailable')
    const lookups = await Promise.all(uncached.slice(0, CONCURRENT).map(async (key) => await proxied(rk, key)))
    assert.deepEqual(new Set(lookups), new Set([503]))
    // and keep queries coming for twice the stall bound: more queries sent into a stalled
    // connection must not keep it alive
    const trickle: Array<Promise<unknown>> = []
    for (let i = 0, until = Date.now() + STALL_MS * 2; Date.now() < until; i++) {
      trickle.push(admin(rk, 'GET', '/admin/policies'), proxied(rk, uncached[i % CONCURRENT]!))
      await sleep(100)
    }
    await Promise.all(trickle)

    proxy.pass()
    // the stuck connections never hear back (the black hole lost what they sent): only the
    // stall watchdog frees their slots, STALL_MS to 1.5 × STALL_MS after they first waited
    const deadline = Date.now() + STALL_MS * 2 + 5_000
    let adminStatus = 0
    let keyStatus = 0
    while (Date.now() < deadline && (adminStatus !== 200 || keyStatus !== 200)) {
      if (adminStatus !== 200) adminStatus = (await admin(rk, 'GET', '/admin/policies')).status
      if (keyStatus !== 200) keyStatus = await proxied(rk, uncached[CONCURRENT]!)
      await sleep(200)
    }
    assert.equal(adminStatus, 200, 'the admin API answers again')
    assert.equal(keyStatus, 200, 'a key not yet cached is found again')
  })

  it('answers 503 governance_unavailable, never 500, when the database refuses connections', async () => {
    await proxy.close() // every connection reset, and nothing listens on the port any more
    const refused = await admin(rk, 'GET', '/admin/partners').catch((err: unknown) => {
      throw new Error(`the admin port failed (${String(err)}); RelayKey's last output:\n${rk.output().slice(-3000)}`)
    })
    assert.equal(refused.status, 503)
    assert.equal(refused.code, 'governance_unavailable')
    // at once when postgres.js reconnects right away; after the admin timeout when its
    // reconnect back-off (grown by the stalls above) outlasts it
    assert.match(refused.message!, /^(the control store is unavailable \((ECONNREFUSED|ECONNRESET|CONNECTION_CLOSED)\)|the stores did not answer within \d+ ms)$/)
    assert.ok(refused.ms < ADMIN_TIMEOUT_MS + 1_000, `answered after ${Math.round(refused.ms)} ms`)
  })
})
