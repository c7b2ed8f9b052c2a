// A key load whose store read was made before an admin change, answered after the change's
// invalidation arrived: neither its key context nor the policy routes built from its read may
// serve anyone after it — not its own key's next request, not another key of the policy.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { KeyCache } from '../../src/gateway/key-cache.js'
import { KeyResolver } from '../../src/gateway/key-resolver.js'
import { SharedPolicyRoutes } from '../../src/gateway/shared-policy-routes.js'
import type { ControlStore } from '../../src/store/control-store.js'
import type { ResolvedKeyRecord } from '../../src/store/model.js'

function record (keyId: string, policyName: string): ResolvedKeyRecord {
  return {
    key: { id: keyId, name: keyId, environment: 'production', customer: null, team: null, service: null, revoked_at: null, expires_at: null },
    hash_expires_at: null,
    policy: {
      id: 'pol_1', name: policyName, allow: null, payment: null, rate_limit: null, budget: null, customer_rate_limit: null,
      customer_budget: null, max_in_flight: null, customer_max_in_flight: null, on_governance_failure: 'deny', costs: [],
    },
    bindings: [],
  } as unknown as ResolvedKeyRecord
}

describe('a key load across an admin change', () => {
  it('serves the state read before the change to its own request only', async () => {
    let policyName = 'before'
    let answerSlowRead: (() => void) | null = null
    const store = {
      async resolveKey (digest: Buffer): Promise<ResolvedKeyRecord> {
        const read = record(digest.toString('latin1'), policyName)
        // key A's first read is made now and answered later
        if (digest.toString('latin1') === 'A' && answerSlowRead === null) return await new Promise((resolve) => { answerSlowRead = () => resolve(read) })
        return read
      },
    } as unknown as ControlStore
    const resolver = new KeyResolver({
      codec: {} as never,
      cache: new KeyCache({ max: 10, ttlMs: 30_000 }),
      policyRoutes: new SharedPolicyRoutes({ max: 10, ttlMs: 30_000 }),
      store,
      compile: {} as never,
      loadTimeoutMs: 5_000,
    })
    const loadA = resolver.load('A')
    await new Promise((resolve) => setImmediate(resolve))
    // the policy changes and its invalidation arrives before A's read is answered
    policyName = 'after'
    resolver.invalidate({ kind: 'policy', id: 'pol_1' })
    answerSlowRead!()
    assert.equal((await loadA)!.policy.name, 'before')
    assert.equal(resolver.cached('A'), undefined, 'the context read before the change is not cached')
    assert.equal((await resolver.load('B'))!.policy.name, 'after', 'another key of the policy gets the changed policy')
    assert.equal((await resolver.load('A'))!.policy.name, 'after')
  })
})
