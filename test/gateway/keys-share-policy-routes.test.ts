// Every key of a policy in an environment shares one compiled set of partner routes. What a
// user must not be able to tell: a key first used after a change to the partner, its
// credential or the policy's bindings sees the change, exactly like a key used before it, and
// keys of one policy in two environments each reach their own environment's base URL.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startRelayKey, setUpGovernedPartner, type RelayKeyProcess, type GovernedSetup } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'

/** changes reach the workers within a second (cluster IPC) */
const CHANGE_WITHIN_MS = 1_000

describe('keys of one policy share its routes', () => {
  let rk: RelayKeyProcess
  let first: MockPartner
  let second: MockPartner
  let setup: GovernedSetup

  before(async () => {
    first = await startMockPartner()
    second = await startMockPartner()
    rk = await startRelayKey({ workers: 1 })
    setup = await setUpGovernedPartner(rk, { baseUrl: `${first.url}/v1` })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    await first.close()
    await second.close()
  })

  async function newKey (environment = 'production'): Promise<string> {
    const res = await rk.admin('POST', '/admin/keys', { name: `key ${Math.random()}`, policy: setup.policyId, environment })
    assert.equal(res.status, 201, JSON.stringify(res.body))
    return (res.body as { key: string }).key
  }

  async function call (key: string): Promise<{ status: number; url: string | null; token: string | null }> {
    const before = [first.received.length, second.received.length]
    const res = await request(`${rk.proxyUrl}/proxy/acme/items/1`, { headers: { 'x-relaykey': key } })
    await res.body.text()
    const seen = first.received.length > before[0]! ? first.received.at(-1)! : second.received.length > before[1]! ? second.received.at(-1)! : null
    return { status: res.statusCode, url: seen === null ? null : `${seen === first.received.at(-1) ? 'first' : 'second'}${seen.url}`, token: seen === null ? null : String(seen.headers['x-app-token']) }
  }

  /** calls with `key` until `expected` or the change bound has passed */
  async function eventually (key: string, expected: { status: number; url: string | null; token: string | null }): Promise<void> {
    const deadline = Date.now() + CHANGE_WITHIN_MS
    let got = await call(key)
    while (JSON.stringify(got) !== JSON.stringify(expected) && Date.now() < deadline) {
      await sleep(50)
      got = await call(key)
    }
    assert.deepEqual(got, expected)
  }

  it('a key used for the first time after a base URL change goes to the new URL', async () => {
    const unused = await newKey()
    assert.deepEqual(await call(setup.key), { status: 200, url: 'first/v1/items/1', token: 'upstream-secret-value' })
    const res = await rk.admin('PATCH', '/admin/partners/acme', { base_urls: { production: `${second.url}/v2` } })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    await eventually(setup.key, { status: 200, url: 'second/v2/items/1', token: 'upstream-secret-value' })
    // loaded after the change: never the routes built before it
    assert.deepEqual(await call(unused), { status: 200, url: 'second/v2/items/1', token: 'upstream-secret-value' })
  })

  it('a key used for the first time after a credential change sends the new secret', async () => {
    const unused = await newKey()
    const res = await rk.admin('PATCH', `/admin/credentials/${setup.credentialId}`, { secret: { provider: 'inline', value: 'rotated-secret' } })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    await eventually(setup.key, { status: 200, url: 'second/v2/items/1', token: 'rotated-secret' })
    assert.deepEqual(await call(unused), { status: 200, url: 'second/v2/items/1', token: 'rotated-secret' })
  })

  it('a key used for the first time after its binding is removed is refused', async () => {
    const unused = await newKey()
    const bindings = await rk.admin('GET', '/admin/bindings')
    const list = (bindings.body as Array<{ id: string; policy_id: string }>).filter((b) => b.policy_id === setup.policyId)
    assert.equal(list.length, 1, JSON.stringify(bindings.body))
    assert.equal((await rk.admin('DELETE', `/admin/bindings/${list[0]!.id}`)).status, 204)
    await eventually(setup.key, { status: 403, url: null, token: null })
    assert.deepEqual(await call(unused), { status: 403, url: null, token: null })
    assert.equal((await rk.admin('POST', '/admin/bindings', { policy: setup.policyId, partner: 'acme' })).status, 201)
    await eventually(setup.key, { status: 200, url: 'second/v2/items/1', token: 'rotated-secret' })
  })

  it('keys of the policy in two environments each reach their environment', async () => {
    assert.equal((await rk.admin('PATCH', '/admin/partners/acme', { base_urls: { production: `${second.url}/v2`, sandbox: `${first.url}/sandbox` } })).status, 200)
    assert.equal((await rk.admin('POST', '/admin/partners/acme/credentials', { name: 'sandbox', environment: 'sandbox', secret: { provider: 'inline', value: 'sandbox-secret' } })).status, 201)
    const sandbox = await newKey('sandbox')
    const production = await newKey('production')
    await eventually(setup.key, { status: 200, url: 'second/v2/items/1', token: 'rotated-secret' })
    assert.deepEqual(await call(sandbox), { status: 200, url: 'first/sandbox/items/1', token: 'sandbox-secret' })
    assert.deepEqual(await call(production), { status: 200, url: 'second/v2/items/1', token: 'rotated-secret' })
    assert.deepEqual(await call(sandbox), { status: 200, url: 'first/sandbox/items/1', token: 'sandbox-secret' })
  })
})
