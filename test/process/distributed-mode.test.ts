// Distributed mode: PostgreSQL holds the control plane, Redis carries changes between nodes.
// Two RelayKey nodes share one database and one Redis (with this run's own key prefix).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { distributedEnv, startRelayKey, setUpGovernedPartner, type RelayKeyProcess, type GovernedSetup } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'


describe('distributed mode: PostgreSQL + Redis, two nodes', () => {
  let db: TestDatabase
  let partner: MockPartner
  let nodeA: RelayKeyProcess
  let nodeB: RelayKeyProcess
  let setup: GovernedSetup

  before(async () => {
    db = await createTestDatabase()
    partner = await startMockPartner()
    const env = distributedEnv(db.url)
    nodeA = await startRelayKey({ env, workers: 1 })
    nodeB = await startRelayKey({ env, workers: 1 })
    setup = await setUpGovernedPartner(nodeA, { baseUrl: partner.url })
  })
  after(async () => {
    assert.equal(await nodeA.stop(), 0)
    assert.equal(await nodeB.stop(), 0)
    await partner.close()
    await db.drop()
  })

  it('applied the migrations at start and is ready', async () => {
    const res = await request(`${nodeB.proxyUrl}/ready`)
    assert.equal(res.statusCode, 200)
    await res.body.dump()
  })

  it('a key created on node A works on node B', async () => {
    const res = await request(`${nodeB.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': setup.key } })
    assert.equal(res.statusCode, 200)
    await res.body.dump()
    assert.equal(partner.received.at(-1)!.headers['x-app-token'], 'upstream-secret-value')
  })

  it('a revocation on node A is refused on node B within 1 s', async () => {
    const warm = await request(`${nodeB.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': setup.key } })
    assert.equal(warm.statusCode, 200)
    await warm.body.dump()
    assert.equal((await nodeA.admin('POST', `/admin/keys/${setup.keyId}/revoke`)).status, 200)
    await sleep(1000)
    const res = await request(`${nodeB.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': setup.key } })
    assert.equal(res.statusCode, 401)
    assert.equal((await res.body.json() as { error: { code: string } }).error.code, 'key_revoked')
  })
})
