// Admin changes reach every worker within 1 s: revocation, rotation with grace, policy edits.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Agent, request } from 'undici'
import { setTimeout as sleep } from 'node:timers/promises'
import { startRelayKey, setUpGovernedPartner, type RelayKeyProcess, type GovernedSetup } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'

/**
 * `n` requests, each on a fresh connection: the cluster primary hands connections to workers
 * round-robin, so consecutive requests alternate between the two workers.
 */
async function statuses (rk: RelayKeyProcess, key: string, n: number, path = 'acme/x'): Promise<Array<{ status: number; code?: string }>> {
  const out = []
  for (let i = 0; i < n; i++) {
    const agent = new Agent({ pipelining: 0 })
    const res = await request(`${rk.proxyUrl}/proxy/${path}`, { headers: { 'x-relaykey': key }, dispatcher: agent })
    const body = await res.body.json() as { error?: { code: string } }
    out.push({ status: res.statusCode, code: body.error?.code })
    await agent.close()
  }
  return out
}

/** relaykey_key_cache_misses_total, summed over the workers by the admin port's /metrics */
async function cacheMisses (rk: RelayKeyProcess): Promise<number> {
  const res = await request(`${rk.adminUrl}/metrics`, { headers: { authorization: `Bearer ${rk.adminToken}` } })
  const line = (await res.body.text()).split('\n').find((l) => l.startsWith('relaykey_key_cache_misses_total '))
  return Number(line?.split(' ')[1] ?? Number.NaN)
}

describe('control-plane changes reach every worker', () => {
  let rk: RelayKeyProcess
  let partner: MockPartner
  let setup: GovernedSetup

  before(async () => {
    partner = await startMockPartner()
    rk = await startRelayKey({ workers: 2 })
    setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
  })
  after(async () => {
    await rk.stop()
    await partner.close()
  })

  it('a revoked key is refused on both workers within 1 s', async () => {
    // warm both workers' caches so the revocation has something to invalidate; one miss per
    // worker shows that both hold the key now
    await sleep(300)
    const missesBefore = await cacheMisses(rk)
    const warm = await statuses(rk, setup.key, 8)
    assert.ok(warm.every((r) => r.status === 200))
    assert.equal(await cacheMisses(rk) - missesBefore, 2, 'both workers served and cached the key')
    assert.equal((await rk.admin('POST', `/admin/keys/${setup.keyId}/revoke`)).status, 200)
    await sleep(1000)
    const after = await statuses(rk, setup.key, 8)
    assert.deepEqual(after.map((r) => r.code), Array(8).fill('key_revoked'))
  })

  it('a rotated key keeps working for the grace period only; the new key works at once', async () => {
    const created = await rk.admin('POST', '/admin/keys', { name: 'rotating', policy: setup.policyId, environment: 'production' })
    const oldKey = created.body.key as string
    assert.ok((await statuses(rk, oldKey, 4)).every((r) => r.status === 200))
    const rotated = await rk.admin('POST', `/admin/keys/${created.body.id}/rotate`, { grace_seconds: 2 })
    assert.equal(rotated.status, 200)
    const newKey = rotated.body.key as string
    assert.notEqual(newKey, oldKey)
    assert.ok((await statuses(rk, newKey, 4)).every((r) => r.status === 200))
    assert.ok((await statuses(rk, oldKey, 4)).every((r) => r.status === 200), 'old key inside its grace period')
    await sleep(2100)
    assert.deepEqual((await statuses(rk, oldKey, 4)).map((r) => r.code), Array(4).fill('key_expired'))
    assert.ok((await statuses(rk, newKey, 4)).every((r) => r.status === 200))
  })

  it('rotation without grace stops the old key at once', async () => {
    const created = await rk.admin('POST', '/admin/keys', { name: 'rotating-now', policy: setup.policyId, environment: 'production' })
    assert.ok((await statuses(rk, created.body.key, 4)).every((r) => r.status === 200))
    assert.equal((await rk.admin('POST', `/admin/keys/${created.body.id}/rotate`, {})).status, 200)
    await sleep(1000)
    assert.ok((await statuses(rk, created.body.key, 4)).every((r) => r.status === 401))
  })

  it('a policy edit (allow list) applies on both workers within 1 s', async () => {
    const created = await rk.admin('POST', '/admin/keys', { name: 'policy-edit', policy: setup.policyId, environment: 'production' })
    assert.ok((await statuses(rk, created.body.key, 4, 'acme/blocked/soon')).every((r) => r.status === 200))
    assert.equal((await rk.admin('PATCH', `/admin/policies/${setup.policyId}`, { allow: [{ method: 'GET', path: '/allowed/**' }] })).status, 200)
    await sleep(1000)
    assert.deepEqual((await statuses(rk, created.body.key, 4, 'acme/blocked/soon')).map((r) => r.code), Array(4).fill('endpoint_not_allowed'))
    assert.ok((await statuses(rk, created.body.key, 4, 'acme/allowed/x')).every((r) => r.status === 200))
  })
})
