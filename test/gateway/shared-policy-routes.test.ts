// The routes every key of one policy in one environment shares: built once, dropped by the
// changes that drop the key contexts built on them, never kept from a build a change overtook.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { SharedPolicyRoutes } from '../../src/gateway/shared-policy-routes.js'
import type { PolicyRoutes } from '../../src/gateway/key-context.js'
import type { ResolvedKeyRecord } from '../../src/store/model.js'

function record (policyId: string, environment: string, partnerIds: string[] = ['prt_1']): ResolvedKeyRecord {
  return {
    key: { id: `key_${Math.random()}`, environment },
    policy: { id: policyId },
    bindings: partnerIds.map((id) => ({ partner: { id } })),
  } as unknown as ResolvedKeyRecord
}

/** the routes `shared` gives a load that read `r` from the store just now */
async function routesOf (shared: SharedPolicyRoutes, r: ResolvedKeyRecord, build: (r: ResolvedKeyRecord) => Promise<PolicyRoutes>): Promise<PolicyRoutes> {
  return (await shared.get(r, shared.epoch, build)).routes
}

/** a build that counts its calls and answers when told */
class Builds {
  count = 0
  readonly waiting: Array<() => void> = []
  readonly build = async (r: ResolvedKeyRecord): Promise<PolicyRoutes> => {
    this.count++
    const built = { policy: { id: r.policy.id }, routes: new Map(), partnerIds: r.bindings.map((b) => b.partner.id), n: this.count } as unknown as PolicyRoutes
    await new Promise<void>((resolve) => this.waiting.push(resolve))
    return built
  }

  finish (): void {
    for (const resolve of this.waiting.splice(0)) resolve()
  }

  /** the routes `promise` gives, once every build asked so far is told to finish */
  async settle<T> (promise: Promise<T>): Promise<T> {
    await new Promise((resolve) => setImmediate(resolve))
    this.finish()
    return await promise
  }
}

describe('shared policy routes', () => {
  it('builds once for every key of a policy in an environment, concurrent loads included', async () => {
    const shared = new SharedPolicyRoutes({ max: 10, ttlMs: 60_000 })
    const builds = new Builds()
    const first = routesOf(shared, record('pol_1', 'production'), builds.build)
    const second = routesOf(shared, record('pol_1', 'production'), builds.build)
    await new Promise((resolve) => setImmediate(resolve))
    builds.finish()
    const [a, b] = await Promise.all([first, second])
    assert.equal(b, a)
    assert.equal(await routesOf(shared, record('pol_1', 'production'), builds.build), a)
    assert.equal(builds.count, 1)
  })

  it('builds apart for another environment or another policy', async () => {
    const shared = new SharedPolicyRoutes({ max: 10, ttlMs: 60_000 })
    const builds = new Builds()
    const production = await builds.settle(routesOf(shared, record('pol_1', 'production'), builds.build))
    const sandbox = await builds.settle(routesOf(shared, record('pol_1', 'sandbox'), builds.build))
    const other = await builds.settle(routesOf(shared, record('pol_2', 'production'), builds.build))
    assert.equal(builds.count, 3)
    assert.notEqual(production, sandbox)
    assert.notEqual(production, other)
  })

  it('drops what a policy or partner change touches, keeps the rest, and ignores key changes', async () => {
    const shared = new SharedPolicyRoutes({ max: 10, ttlMs: 60_000 })
    const builds = new Builds()
    const one = await builds.settle(routesOf(shared, record('pol_1', 'production', ['prt_1']), builds.build))
    const two = await builds.settle(routesOf(shared, record('pol_2', 'production', ['prt_2', 'prt_3']), builds.build))
    shared.invalidate({ kind: 'key', id: 'key_1' })
    assert.equal(shared.size, 2)
    shared.invalidate({ kind: 'partner', id: 'prt_3' })
    assert.equal(shared.size, 1)
    assert.equal(await routesOf(shared, record('pol_1', 'production', ['prt_1']), builds.build), one)
    shared.invalidate({ kind: 'policy', id: 'pol_1' })
    assert.equal(shared.size, 0)
    const rebuilt = await builds.settle(routesOf(shared, record('pol_2', 'production', ['prt_2', 'prt_3']), builds.build))
    assert.notEqual(rebuilt, two)
    shared.invalidate({ kind: 'all' })
    assert.equal(shared.size, 0)
  })

  it('does not keep a build that a change overtook, nor share it with loads after the change', async () => {
    const shared = new SharedPolicyRoutes({ max: 10, ttlMs: 60_000 })
    const builds = new Builds()
    const before = routesOf(shared, record('pol_1', 'production'), builds.build)
    await new Promise((resolve) => setImmediate(resolve))
    shared.invalidate({ kind: 'policy', id: 'pol_1' })
    // a load after the change starts its own build rather than joining the old one
    const after = routesOf(shared, record('pol_1', 'production'), builds.build)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(builds.count, 2)
    // the fresh build ends first; the old one, ending later, must not replace it
    builds.waiting[1]!()
    const fresh = await after
    builds.waiting[0]!()
    const old = await before
    assert.notEqual(old, fresh)
    assert.equal(shared.size, 1)
    assert.equal(await routesOf(shared, record('pol_1', 'production'), builds.build), fresh)
  })

  it('never keeps or shares routes built from a store read made before a change', async () => {
    const shared = new SharedPolicyRoutes({ max: 10, ttlMs: 60_000 })
    const builds = new Builds()
    const readAt = shared.epoch
    // the read's answer arrives after the change's invalidation
    shared.invalidate({ kind: 'policy', id: 'pol_1' })
    const stale = await builds.settle(shared.get(record('pol_1', 'production'), readAt, builds.build))
    assert.equal(shared.size, 0)
    const fresh = await builds.settle(routesOf(shared, record('pol_1', 'production'), builds.build))
    assert.notEqual(fresh, stale.routes)
    assert.equal(builds.count, 2)
    // an entry built after the change serves a load whose read was older: it is the newer state
    assert.equal((await shared.get(record('pol_1', 'production'), readAt, builds.build)).routes, fresh)
  })

  it('tells when the routes stop being reused, so contexts built on them expire no later', async () => {
    let now = 1_000
    const shared = new SharedPolicyRoutes({ max: 10, ttlMs: 500, now: () => now })
    const builds = new Builds()
    const first = await builds.settle(shared.get(record('pol_1', 'production'), shared.epoch, builds.build))
    assert.equal(first.expiresAt, 1_500)
    now = 1_400
    assert.equal((await shared.get(record('pol_1', 'production'), shared.epoch, builds.build)).expiresAt, 1_500)
  })

  it('rebuilds after the TTL, and after a build that failed', async () => {
    let now = 1_000
    const shared = new SharedPolicyRoutes({ max: 10, ttlMs: 500, now: () => now })
    const builds = new Builds()
    const first = await builds.settle(routesOf(shared, record('pol_1', 'production'), builds.build))
    now = 1_499
    assert.equal(await routesOf(shared, record('pol_1', 'production'), builds.build), first)
    now = 1_500
    const second = await builds.settle(routesOf(shared, record('pol_1', 'production'), builds.build))
    assert.notEqual(second, first)
    const failing = async (): Promise<PolicyRoutes> => { throw new Error('the secret store is down') }
    now = 5_000
    await assert.rejects(routesOf(shared, record('pol_1', 'production'), failing), /secret store is down/)
    const third = await builds.settle(routesOf(shared, record('pol_1', 'production'), builds.build))
    assert.notEqual(third, second)
  })

  it('stays bounded', async () => {
    const shared = new SharedPolicyRoutes({ max: 3, ttlMs: 60_000 })
    const builds = new Builds()
    for (let i = 0; i < 10; i++) await builds.settle(routesOf(shared, record(`pol_${i}`, 'production'), builds.build))
    assert.ok(shared.size <= 3, `${shared.size} entries`)
  })
})
