// A key that is not cached needs the control store, and so does telling an unknown partner
// from an unbound one. When PostgreSQL stops answering without closing anything (black-holed,
// a stuck connection), such requests are refused quickly with 503 governance_unavailable
// instead of hanging; cached keys keep working; once the database answers the key is found.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startRelayKeyBehindFaultProxy, type RelayKeyBehindFaultProxy } from '../helpers/relaykey-behind-fault-proxy.js'
import type { GovernedSetup, RelayKeyProcess } from '../helpers/relaykey-process.js'
import type { TcpFaultProxy } from '../helpers/tcp-fault-proxy.js'

const LOAD_TIMEOUT_MS = 500

async function call (rk: RelayKeyProcess, key: string): Promise<{ status: number; code: string | undefined; ms: number }> {
  const started = performance.now()
  const res = await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': key } })
  const text = await res.body.text()
  const ms = performance.now() - started
  return { status: res.statusCode, code: res.statusCode === 200 ? undefined : (JSON.parse(text) as { error: { code: string } }).error.code, ms }
}

describe('a key lookup the control store does not answer', () => {
  let env: RelayKeyBehindFaultProxy
  let proxy: TcpFaultProxy
  let rk: RelayKeyProcess
  let setup: GovernedSetup
  let uncached: string

  before(async () => {
    env = await startRelayKeyBehindFaultProxy({ RELAYKEY_KEY_LOAD_TIMEOUT_MS: String(LOAD_TIMEOUT_MS) })
    ;({ proxy, rk, setup } = env)
    const second = await rk.admin('POST', '/admin/keys', { name: 'not yet used', policy: setup.policyId, environment: 'production' })
    assert.equal(second.status, 201)
    uncached = second.body.key
    await sleep(300)
    assert.equal((await call(rk, setup.key)).status, 200) // cached from now on
  })

  after(async () => { await env.close() })

  it('is refused with 503 governance_unavailable within the load timeout, while cached keys still work', async () => {
    proxy.blackhole()
    const refused = await call(rk, uncached)
    assert.equal(refused.status, 503)
    assert.equal(refused.code, 'governance_unavailable')
    assert.ok(refused.ms >= LOAD_TIMEOUT_MS - 50 && refused.ms < LOAD_TIMEOUT_MS + 1000, `answered after ${Math.round(refused.ms)} ms`)
    // a second request for the same key joins the stuck lookup and is refused as quickly
    const again = await call(rk, uncached)
    assert.equal(again.code, 'governance_unavailable')
    assert.ok(again.ms < LOAD_TIMEOUT_MS + 1000)
    assert.equal((await call(rk, setup.key)).status, 200, 'a cached key does not need the database')
    // a cached key asking for a partner it is not bound to: telling 404 from 403 needs the store
    const started = performance.now()
    const res = await request(`${rk.proxyUrl}/proxy/elsewhere/x`, { headers: { 'x-relaykey': setup.key } })
    const body = await res.body.json() as { error: { code: string } }
    assert.equal(res.statusCode, 503)
    assert.equal(body.error.code, 'governance_unavailable')
    assert.ok(performance.now() - started < LOAD_TIMEOUT_MS + 1000)
  })

  it('finds the key once the database answers again, though the lookups sent into the black hole never end', async () => {
    // the connections that carried them stay open and silent: only a fresh lookup on another
    // connection can find the key
    proxy.pass()
    const deadline = Date.now() + 15_000
    let last = await call(rk, uncached)
    while (last.status !== 200 && Date.now() < deadline) {
      await sleep(250)
      last = await call(rk, uncached)
    }
    assert.equal(last.status, 200, `still ${last.status} ${last.code ?? ''} 15 s after the database came back`)
  })
})
