// /admin/keys: issue, list, get, patch, revoke, rotate. The raw key appears in the create and
// rotate responses and nowhere else; the store only ever sees its digest.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { assertConflict, assertError, assertInvalid, startAdmin, type AdminHarness } from './admin-harness.js'

const HOUR = 3600_000

describe('keys', () => {
  let admin: AdminHarness
  let policyId = ''
  /** raw key → number of responses allowed to carry it (create and rotate) */
  const issued = new Map<string, number>()
  before(async () => {
    admin = await startAdmin()
    policyId = (await admin.call('POST', '/admin/policies', { name: 'standard' })).json.id
    await admin.call('POST', '/admin/policies', { name: 'premium' })
  })
  after(async () => {
    for (const [key, allowed] of issued) {
      const carrying = admin.bodies.filter((b) => b.includes(key)).length
      assert.equal(carrying, allowed, `raw key ${key.slice(0, 11)}… appeared in ${carrying} responses`)
      assert.ok(!admin.logs.join('\n').includes(key), 'a raw key reached the log')
    }
    await admin.close()
  })

  async function createKey (body: Record<string, unknown>): Promise<{ id: string, key: string, json: Record<string, unknown> }> {
    const reply = await admin.call('POST', '/admin/keys', body)
    assert.equal(reply.status, 201, reply.text)
    issued.set(reply.json.key, 1)
    return { id: reply.json.id, key: reply.json.key, json: reply.json }
  }

  it('issues a key: 201 with the raw key, its prefix and status active; publishes it; stores only the digest', async () => {
    const reply = await admin.call('POST', '/admin/keys', {
      name: 'checkout', policy: policyId, environment: 'production', customer: 'cust-1', team: 'payments', service: 'checkout-api',
    })
    assert.equal(reply.status, 201, reply.text)
    const k = reply.json
    issued.set(k.key, 1)
    assert.match(k.key, /^vk_[0-9A-Za-z]{28}$/)
    assert.ok(k.key.startsWith(k.prefix))
    assert.equal(k.policy_id, policyId)
    assert.equal(k.environment, 'production')
    assert.equal(k.customer, 'cust-1')
    assert.equal(k.team, 'payments')
    assert.equal(k.service, 'checkout-api')
    assert.equal(k.expires_at, null)
    assert.equal(k.revoked_at, null)
    assert.equal(k.status, 'active')
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'key', id: k.id })
    const digest = admin.codec.verify(k.key)
    assert.ok(digest !== null)
    const resolved = await admin.store.resolveKey(digest)
    assert.equal(resolved?.key.id, k.id)
  })

  it('refuses to move a key with a budget to another customer (409), since its month would start over', async () => {
    const budgeted = (await admin.call('POST', '/admin/policies', { name: 'budgeted', budget: { monthly: 100 } })).json.id
    const { id } = await createKey({ name: 'b', policy: budgeted, environment: 'production', customer: 'cust-a' })
    const moved = await admin.call('PATCH', `/admin/keys/${id}`, { customer: 'cust-b' })
    assert.equal(moved.status, 409)
    assert.equal(moved.json.error.code, 'conflict')
    assert.match(moved.json.error.message, /^customer: /)
    assert.equal((await admin.call('PATCH', `/admin/keys/${id}`, { customer: 'cust-a', name: 'renamed' })).status, 200)
    // nor by leaving the budgeted policy in the same patch
    const leaving = await admin.call('PATCH', `/admin/keys/${id}`, { customer: 'cust-b', policy: policyId })
    assert.equal(leaving.status, 409)
    assert.match(leaving.json.error.message, /^customer: /)
    assert.equal((await admin.call('GET', `/admin/keys/${id}`)).json.policy_id, budgeted)
    // nor into a budgeted policy
    const { id: free } = await createKey({ name: 'f', policy: policyId, environment: 'production', customer: 'cust-a' })
    assert.equal((await admin.call('PATCH', `/admin/keys/${free}`, { customer: 'cust-c', policy: budgeted })).status, 409)
    assert.equal((await admin.call('PATCH', `/admin/keys/${free}`, { customer: 'cust-b' })).status, 200)
  })

  it('accepts the policy by name and optional fields as null', async () => {
    const { json } = await createKey({ name: 'by-name', policy: 'premium', environment: 'sandbox', customer: null })
    assert.equal(json.customer, null)
    assert.equal(json.team, null)
    assert.notEqual(json.policy_id, policyId)
  })

  it('stores expires_at in UTC and shows the key as expired once it passes', async () => {
    const at = new Date(Date.now() + HOUR)
    const local = at.toISOString().replace('Z', '+00:00')
    const { id, json } = await createKey({ name: 'short-lived', policy: policyId, environment: 'production', expires_at: local })
    assert.equal(json.expires_at, at.toISOString())
    assert.equal(json.status, 'active')
    admin.clockOffset = 2 * HOUR
    try {
      assert.equal((await admin.call('GET', `/admin/keys/${id}`)).json.status, 'expired')
    } finally {
      admin.clockOffset = 0
    }
  })

  const invalid: Array<[string, Record<string, unknown>, string]> = [
    ['missing name', { name: undefined }, 'name'],
    ['empty name', { name: '' }, 'name'],
    ['missing policy', { policy: undefined }, 'policy'],
    ['unknown policy', { policy: 'pol_unknown' }, 'policy'],
    ['policy not a string', { policy: 12 }, 'policy'],
    ['missing environment', { environment: undefined }, 'environment'],
    ['malformed environment', { environment: 'Production' }, 'environment'],
    ['empty customer', { customer: '' }, 'customer'],
    ['customer not a string', { customer: 42 }, 'customer'],
    ['team with a newline', { team: 'a\nb' }, 'team'],
    ['service too long', { service: 's'.repeat(257) }, 'service'],
    ['expires_at not RFC 3339', { expires_at: 'tomorrow' }, 'expires_at'],
    ['expires_at without a zone', { expires_at: '2999-01-01T00:00:00' }, 'expires_at'],
    ['expires_at on February 30', { expires_at: '2999-02-30T00:00:00Z' }, 'expires_at'],
    ['expires_at as a number', { expires_at: 4102444800 }, 'expires_at'],
    ['expires_at in the past', { expires_at: '2001-01-01T00:00:00Z' }, 'expires_at'],
    ['a raw key field', { key: 'vk_mine' }, 'key'],
    ['an unknown field', { owner: 'me' }, 'owner'],
  ]
  for (const [what, fields, field] of invalid) {
    it(`refuses ${what} naming ${field}`, async () => {
      const reply = await admin.call('POST', '/admin/keys', { name: 'k', policy: 'standard', environment: 'production', ...fields })
      assertInvalid(reply, field)
    })
  }

  it('lists keys without raw keys, filtered by policy (id or name) and customer', async () => {
    const a = await createKey({ name: 'acme-1', policy: 'premium', environment: 'production', customer: 'acme' })
    const b = await createKey({ name: 'acme-2', policy: 'standard', environment: 'production', customer: 'acme' })
    const all = await admin.call('GET', '/admin/keys')
    assert.equal(all.status, 200)
    assert.ok(all.json.length >= 4)
    for (const k of all.json) {
      assert.equal(k.key, undefined)
      assert.ok(['active', 'revoked', 'expired'].includes(k.status))
    }
    const acme = await admin.call('GET', '/admin/keys?customer=acme')
    assert.deepEqual(acme.json.map((k: { id: string }) => k.id).sort(), [a.id, b.id].sort())
    const premiumAcme = await admin.call('GET', '/admin/keys?policy=premium&customer=acme')
    assert.deepEqual(premiumAcme.json.map((k: { id: string }) => k.id), [a.id])
    const byId = await admin.call('GET', `/admin/keys?policy=${policyId}&customer=acme`)
    assert.deepEqual(byId.json.map((k: { id: string }) => k.id), [b.id])
    assert.deepEqual((await admin.call('GET', '/admin/keys?policy=no-such-policy')).json, [])
    assertInvalid(await admin.call('GET', '/admin/keys?customer='), 'customer')
    assertInvalid(await admin.call('GET', '/admin/keys?status=active'), 'status')
  })

  it('gets one key without its raw value, and 404s for unknown ids', async () => {
    const { id } = await createKey({ name: 'get-me', policy: 'standard', environment: 'production' })
    const reply = await admin.call('GET', `/admin/keys/${id}`)
    assert.equal(reply.status, 200)
    assert.equal(reply.json.id, id)
    assert.equal(reply.json.key, undefined)
    assert.equal(reply.json.status, 'active')
    assertError(await admin.call('GET', '/admin/keys/key_nope'), 404, 'not_found')
  })

  it('patches name, labels, expiry and policy, publishing the key', async () => {
    const { id } = await createKey({ name: 'patch-me', policy: 'standard', environment: 'production', customer: 'c1' })
    const expires = new Date(Date.now() + 24 * HOUR).toISOString()
    const reply = await admin.call('PATCH', `/admin/keys/${id}`, {
      name: 'patched', customer: null, team: 't', service: 's', expires_at: expires, policy: 'premium', environment: 'production',
    })
    assert.equal(reply.status, 200, reply.text)
    assert.equal(reply.json.name, 'patched')
    assert.equal(reply.json.customer, null)
    assert.equal(reply.json.team, 't')
    assert.equal(reply.json.expires_at, expires)
    assert.notEqual(reply.json.policy_id, policyId)
    assert.equal(reply.json.key, undefined)
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'key', id })
    const cleared = await admin.call('PATCH', `/admin/keys/${id}`, { expires_at: null })
    assert.equal(cleared.json.expires_at, null)
  })

  it('validates patches: environment is fixed, policy must exist, expiry must be future', async () => {
    const { id } = await createKey({ name: 'strict', policy: 'standard', environment: 'production' })
    const path = `/admin/keys/${id}`
    assertInvalid(await admin.call('PATCH', path, { environment: 'sandbox' }), 'environment')
    assertInvalid(await admin.call('PATCH', path, { policy: 'nope' }), 'policy')
    assertInvalid(await admin.call('PATCH', path, { expires_at: '2000-01-01T00:00:00Z' }), 'expires_at')
    assertInvalid(await admin.call('PATCH', path, { name: '' }), 'name')
    assertInvalid(await admin.call('PATCH', path, { prefix: 'vk_x' }), 'prefix')
    assertInvalid(await admin.call('PATCH', path, { revoked_at: null }), 'revoked_at')
    assertError(await admin.call('PATCH', '/admin/keys/key_nope', { name: 'x' }), 404, 'not_found')
  })

  it('revokes a key: 200 with revoked_at and status revoked, published; a second revoke keeps the time', async () => {
    const { id } = await createKey({ name: 'revoke-me', policy: 'standard', environment: 'production' })
    const reply = await admin.call('POST', `/admin/keys/${id}/revoke`)
    assert.equal(reply.status, 200, reply.text)
    assert.equal(reply.json.status, 'revoked')
    assert.match(reply.json.revoked_at, /^\d{4}-\d{2}-\d{2}T/)
    assert.equal(reply.json.key, undefined)
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'key', id })
    const again = await admin.call('POST', `/admin/keys/${id}/revoke`)
    assert.equal(again.status, 200)
    assert.equal(again.json.revoked_at, reply.json.revoked_at)
    assertError(await admin.call('POST', '/admin/keys/key_nope/revoke'), 404, 'not_found')
  })

  it('refuses to patch or rotate a revoked key with 409', async () => {
    const { id } = await createKey({ name: 'gone', policy: 'standard', environment: 'production' })
    await admin.call('POST', `/admin/keys/${id}/revoke`)
    const before = admin.publisher.published.length
    assertConflict(await admin.call('PATCH', `/admin/keys/${id}`, { name: 'back' }), 'key')
    assertConflict(await admin.call('POST', `/admin/keys/${id}/rotate`, { grace_seconds: 60 }), 'key')
    assert.equal(admin.publisher.published.length, before)
  })

  it('rotates a key: a new raw key, the old one kept for the grace period only', async () => {
    const old = await createKey({ name: 'rotate-me', policy: 'standard', environment: 'production' })
    const started = Date.now()
    const reply = await admin.call('POST', `/admin/keys/${old.id}/rotate`, { grace_seconds: 600 })
    assert.equal(reply.status, 200, reply.text)
    const fresh: string = reply.json.key
    issued.set(fresh, 1)
    assert.match(fresh, /^vk_/)
    assert.notEqual(fresh, old.key)
    assert.equal(reply.json.id, old.id)
    assert.ok(fresh.startsWith(reply.json.prefix))
    assert.equal(reply.json.status, 'active')
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'key', id: old.id })

    const oldRecord = await admin.store.resolveKey(admin.codec.verify(old.key)!)
    assert.ok(oldRecord !== null && oldRecord.hash_expires_at !== null)
    const expiry = Date.parse(oldRecord.hash_expires_at)
    assert.ok(expiry >= started + 600_000 - 1000 && expiry <= Date.now() + 600_000 + 1000, `old hash expires at ${oldRecord.hash_expires_at}`)
    const newRecord = await admin.store.resolveKey(admin.codec.verify(fresh)!)
    assert.equal(newRecord?.key.id, old.id)
    assert.equal(newRecord?.hash_expires_at, null)
  })

  it('rotates without a body: grace 0, the old key stops now', async () => {
    const old = await createKey({ name: 'rotate-now', policy: 'standard', environment: 'production' })
    const reply = await admin.call('POST', `/admin/keys/${old.id}/rotate`)
    assert.equal(reply.status, 200, reply.text)
    issued.set(reply.json.key, 1)
    const oldRecord = await admin.store.resolveKey(admin.codec.verify(old.key)!)
    if (oldRecord !== null) {
      assert.ok(oldRecord.hash_expires_at !== null && Date.parse(oldRecord.hash_expires_at) <= Date.now())
    }
  })

  it('validates grace_seconds and refuses unknown rotate fields', async () => {
    const { id } = await createKey({ name: 'grace', policy: 'standard', environment: 'production' })
    for (const grace of [-1, 2_592_001, 1.5, '60', true]) {
      assertInvalid(await admin.call('POST', `/admin/keys/${id}/rotate`, { grace_seconds: grace }), 'grace_seconds')
    }
    assertInvalid(await admin.call('POST', `/admin/keys/${id}/rotate`, { grace: 5 }), 'grace')
    assertInvalid(await admin.call('POST', `/admin/keys/${id}/rotate`, [5]), 'body')
    assertError(await admin.call('POST', '/admin/keys/key_nope/rotate', {}), 404, 'not_found')
    const max = await admin.call('POST', `/admin/keys/${id}/rotate`, { grace_seconds: 2_592_000 })
    assert.equal(max.status, 200, max.text)
    issued.set(max.json.key, 1)
  })
})
