// The behaviour every ControlStore must show, run against each implementation by its own
// test file. One store per implementation serves all cases, so every case makes its own
// uniquely named records and only looks at those.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { ConflictError, ValidationError } from '../../src/errors.js'
import type { ControlStore } from '../../src/store/control-store.js'
import type { CredentialInput, KeyInput, KeyPatch, PartnerInput, PolicyInput } from '../../src/store/model.js'

export interface OpenedStore {
  store: ControlStore
  cleanup(): Promise<void>
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

function unique (base: string): string {
  return `${base}-${randomBytes(4).toString('hex')}`
}

function hash (): Buffer {
  return randomBytes(32)
}

function partnerInput (slug = unique('acme')): PartnerInput {
  return {
    slug,
    base_urls: { sandbox: 'https://sandbox.acme.test/v1', production: 'https://api.acme.test/v1' },
    auth: { type: 'header', name: 'X-App-Token', prefix: '' },
    tls: null,
    timeouts: { connect_ms: 1000, request_ms: 30000 },
    retry: { max_attempts: 3, base_delay_ms: 100, max_delay_ms: 2000, on_status: [502, 503], respect_retry_after: true, budget_percent: 20, budget_min_per_second: 3 },
    circuit_breaker: { failure_threshold: 5, open_ms: 30000, max_in_flight: 1000 },
  }
}

function credentialInput (name = unique('main'), environment = 'sandbox'): CredentialInput {
  return { name, environment, secret: { provider: 'inline', ciphertext: 'v1.aGVsbG8.d29ybGQ' }, secret_parts: {}, weight: 1, rate_limit: null }
}

function policyInput (name = unique('standard')): PolicyInput {
  return {
    name,
    rate_limit: { requests: 10, per_seconds: 1, burst: 20 },
    customer_rate_limit: null,
    budget: { monthly: 10000 },
    customer_budget: null,
    costs: [{ method: 'POST', path: '/resources/applicants', cost: 150 }],
    allow: null,
    payment: null,
    on_governance_failure: 'deny',
    max_in_flight: 5,
    customer_max_in_flight: null,
  }
}

function keyInput (policyId: string, overrides: Partial<KeyInput> = {}): KeyInput {
  return {
    name: 'ci', policy_id: policyId, environment: 'sandbox', customer: null, team: null, service: null, expires_at: null,
    ...overrides,
  }
}

async function rejectsWith (promise: Promise<unknown>, type: typeof ConflictError | typeof ValidationError, field: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`)
    assert.equal(err.field, field)
    return true
  })
}

/** Lets the clock move past the millisecond of the previous write. */
async function tick (): Promise<void> {
  await sleep(5)
}

function ids (records: Array<{ id: string }>): string[] {
  return records.map((r) => r.id).sort()
}

export function runControlStoreContract (name: string, open: () => Promise<OpenedStore>): void {
  describe(`ControlStore contract: ${name}`, () => {
    let opened: OpenedStore | undefined
    let store: ControlStore

    before(async () => {
      opened = await open()
      store = opened.store
    })
    after(async () => {
      await opened?.cleanup()
    })

    it('answers ping and names its kind', async () => {
      await store.ping()
      assert.equal(store.kind, name)
    })

    describe('partners', () => {
      it('creates a partner and returns exactly what was stored', async () => {
        const input = partnerInput()
        const partner = await store.createPartner(input)
        assert.match(partner.id, /^prt_/)
        assert.match(partner.created_at, ISO_UTC)
        assert.equal(partner.updated_at, partner.created_at)
        assert.deepEqual({ ...partner, id: undefined, created_at: undefined, updated_at: undefined },
          { ...input, id: undefined, created_at: undefined, updated_at: undefined })
        assert.deepEqual(await store.getPartner(input.slug), partner)
        assert.deepEqual(await store.getPartnerById(partner.id), partner)
        assert.deepEqual((await store.listPartners()).find((p) => p.id === partner.id), partner)
      })

      it('lists partners by slug', async () => {
        const suffix = unique('')
        const zeta = await store.createPartner(partnerInput(`zeta${suffix}`))
        const alpha = await store.createPartner(partnerInput(`alpha${suffix}`))
        const mine = (await store.listPartners()).filter((p) => p.slug.endsWith(suffix))
        assert.deepEqual(mine.map((p) => p.id), [alpha.id, zeta.id])
      })

      it('refuses a duplicate slug with ConflictError(slug), also on rename', async () => {
        const a = await store.createPartner(partnerInput())
        const b = await store.createPartner(partnerInput())
        await rejectsWith(store.createPartner(partnerInput(a.slug)), ConflictError, 'slug')
        await rejectsWith(store.updatePartner(b.slug, { slug: a.slug }), ConflictError, 'slug')
        assert.deepEqual(await store.getPartner(b.slug), b)
      })

      it('lets exactly one of two concurrent creates of a slug win', async () => {
        const slug = unique('race')
        const results = await Promise.allSettled([store.createPartner(partnerInput(slug)), store.createPartner(partnerInput(slug))])
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
        const refused = results.find((r) => r.status === 'rejected')
        assert.ok(refused?.status === 'rejected' && refused.reason instanceof ConflictError)
      })

      it('answers null for unknown slugs and ids', async () => {
        assert.equal(await store.getPartner('no-such-partner'), null)
        assert.equal(await store.getPartnerById('prt_missing'), null)
        assert.equal(await store.updatePartner('no-such-partner', { timeouts: { connect_ms: 1, request_ms: 2 } }), null)
        assert.equal(await store.deletePartner('no-such-partner'), null)
      })

      it('patches only the given fields and advances updated_at', async () => {
        const partner = await store.createPartner(partnerInput())
        await tick()
        const timeouts = { connect_ms: 250, request_ms: 5000 }
        const updated = await store.updatePartner(partner.slug, { timeouts })
        assert.ok(updated !== null)
        assert.deepEqual(updated, { ...partner, timeouts, updated_at: updated.updated_at })
        assert.ok(updated.updated_at > partner.updated_at)
        assert.deepEqual(await store.getPartner(partner.slug), updated)

        const renamed = await store.updatePartner(partner.slug, { slug: unique('renamed'), auth: { type: 'bearer' } })
        assert.ok(renamed !== null)
        assert.equal(renamed.id, partner.id)
        assert.deepEqual(renamed.auth, { type: 'bearer' })
        assert.equal(await store.getPartner(partner.slug), null)
      })

      it('ignores fields a patch may not change and returns the record for an empty patch', async () => {
        const partner = await store.createPartner(partnerInput())
        const sneaky = { id: 'prt_other', created_at: '2000-01-01T00:00:00.000Z' } as Partial<PartnerInput>
        assert.deepEqual(await store.updatePartner(partner.slug, sneaky), partner)
        assert.deepEqual(await store.updatePartner(partner.slug, {}), partner)
      })

      it('deletes a partner with its credentials and bindings', async () => {
        const partner = await store.createPartner(partnerInput())
        const credential = await store.createCredential(partner.id, credentialInput())
        const policy = await store.createPolicy(policyInput())
        const binding = await store.createBinding({ policy_id: policy.id, partner_id: partner.id, credentials: [credential.id] })
        assert.deepEqual(await store.deletePartner(partner.slug), partner)
        assert.equal(await store.getPartnerById(partner.id), null)
        assert.equal(await store.getCredential(credential.id), null)
        assert.deepEqual(await store.listCredentials(partner.id), [])
        assert.equal(await store.getBinding(binding.id), null)
        assert.ok(await store.getPolicy(policy.id))
        assert.equal(await store.deletePartner(partner.slug), null)
      })
    })

    describe('credentials', () => {
      it('creates, reads, lists (by name, per partner) and deletes credentials', async () => {
        const partner = await store.createPartner(partnerInput())
        const other = await store.createPartner(partnerInput())
        const limited = { ...credentialInput('b-prod', 'production'), weight: 3, rate_limit: { requests: 100, per_seconds: 60, burst: 100 } }
        const b = await store.createCredential(partner.id, limited)
        const a = await store.createCredential(partner.id, { ...credentialInput('a-env'), secret: { provider: 'env', ref: 'ACME_TOKEN' } })
        await store.createCredential(other.id, credentialInput('a-env'))
        assert.match(a.id, /^cred_/)
        assert.equal(a.partner_id, partner.id)
        assert.match(a.created_at, ISO_UTC)
        assert.deepEqual(a.secret, { provider: 'env', ref: 'ACME_TOKEN' })
        assert.equal(a.rate_limit, null)
        assert.deepEqual({ ...b, id: undefined, partner_id: undefined, created_at: undefined, updated_at: undefined },
          { ...limited, id: undefined, partner_id: undefined, created_at: undefined, updated_at: undefined })
        assert.deepEqual(await store.getCredential(b.id), b)
        assert.deepEqual(await store.listCredentials(partner.id), [a, b])
        assert.deepEqual(await store.deleteCredential(a.id), a)
        assert.equal(await store.getCredential(a.id), null)
        assert.equal(await store.deleteCredential(a.id), null)
        assert.deepEqual(await store.listCredentials(partner.id), [b])
      })

      it('refuses a duplicate name within one partner with ConflictError(name)', async () => {
        const partner = await store.createPartner(partnerInput())
        const first = await store.createCredential(partner.id, credentialInput('primary'))
        const second = await store.createCredential(partner.id, credentialInput('secondary'))
        await rejectsWith(store.createCredential(partner.id, credentialInput('primary')), ConflictError, 'name')
        await rejectsWith(store.updateCredential(second.id, { name: first.name }), ConflictError, 'name')
      })

      it('refuses a credential for an unknown partner with ValidationError(partner)', async () => {
        await rejectsWith(store.createCredential('prt_missing', credentialInput()), ValidationError, 'partner')
      })

      it('patches only the given fields and advances updated_at', async () => {
        const partner = await store.createPartner(partnerInput())
        const credential = await store.createCredential(partner.id, { ...credentialInput(), rate_limit: { requests: 5, per_seconds: 1, burst: 5 } })
        await tick()
        const updated = await store.updateCredential(credential.id, { weight: 7, rate_limit: null })
        assert.ok(updated !== null)
        assert.deepEqual(updated, { ...credential, weight: 7, rate_limit: null, updated_at: updated.updated_at })
        assert.ok(updated.updated_at > credential.updated_at)
        assert.equal(await store.updateCredential('cred_missing', { weight: 2 }), null)
      })

      it('removes a deleted credential from the bindings that list it', async () => {
        const partner = await store.createPartner(partnerInput())
        const keep = await store.createCredential(partner.id, credentialInput())
        const drop = await store.createCredential(partner.id, credentialInput())
        const listing = await store.createBinding({ policy_id: (await store.createPolicy(policyInput())).id, partner_id: partner.id, credentials: [keep.id, drop.id] })
        const all = await store.createBinding({ policy_id: (await store.createPolicy(policyInput())).id, partner_id: partner.id, credentials: null })
        await store.deleteCredential(drop.id)
        assert.deepEqual(await store.getBinding(listing.id), { ...listing, credentials: [keep.id] })
        assert.deepEqual(await store.getBinding(all.id), all)
      })
    })

    describe('policies', () => {
      it('creates a policy and reads it back by id and by name', async () => {
        const input: PolicyInput = {
          ...policyInput(),
          customer_rate_limit: { requests: 100, per_seconds: 60, burst: 150 },
          customer_budget: { monthly: 50000 },
          costs: [],
          allow: [],
          payment: {
            amount: '10000', asset: '0xabc', network: 'eip155:84532', pay_to: '0xdef', facilitator_url: 'https://facilitator.example', scheme: 'exact',
            max_timeout_seconds: 60, description: null, extra: {}, prices: [{ method: 'GET', path: '/a/*', amount: '5' }],
          },
          on_governance_failure: 'allow',
        }
        const policy = await store.createPolicy(input)
        assert.match(policy.id, /^pol_/)
        assert.match(policy.created_at, ISO_UTC)
        assert.deepEqual({ ...policy, id: undefined, created_at: undefined, updated_at: undefined },
          { ...input, id: undefined, created_at: undefined, updated_at: undefined })
        assert.deepEqual(policy.allow, [])
        assert.deepEqual(await store.getPolicy(policy.id), policy)
        assert.deepEqual(await store.getPolicy(policy.name), policy)
        assert.deepEqual((await store.listPolicies()).find((p) => p.id === policy.id), policy)
        assert.equal((await store.createPolicy(policyInput())).allow, null)
      })

      it('prefers the id when one policy is named like another one\'s id', async () => {
        const target = await store.createPolicy(policyInput())
        await store.createPolicy(policyInput(target.id))
        assert.deepEqual(await store.getPolicy(target.id), target)
      })

      it('lists policies by name', async () => {
        const suffix = unique('')
        const b = await store.createPolicy(policyInput(`b${suffix}`))
        const a = await store.createPolicy(policyInput(`a${suffix}`))
        const mine = (await store.listPolicies()).filter((p) => p.name.endsWith(suffix))
        assert.deepEqual(mine.map((p) => p.id), [a.id, b.id])
      })

      it('refuses a duplicate name with ConflictError(name), also on rename', async () => {
        const a = await store.createPolicy(policyInput())
        const b = await store.createPolicy(policyInput())
        await rejectsWith(store.createPolicy(policyInput(a.name)), ConflictError, 'name')
        await rejectsWith(store.updatePolicy(b.id, { name: a.name }), ConflictError, 'name')
      })

      it('answers null for unknown ids and names', async () => {
        assert.equal(await store.getPolicy('pol_missing'), null)
        assert.equal(await store.updatePolicy('pol_missing', { budget: null }), null)
        assert.equal(await store.deletePolicy('pol_missing'), null)
      })

      it('patches only the given fields, keeping null apart from []', async () => {
        const policy = await store.createPolicy(policyInput())
        await tick()
        const allowNothing = await store.updatePolicy(policy.id, { allow: [], budget: null })
        assert.ok(allowNothing !== null)
        assert.deepEqual(allowNothing, { ...policy, allow: [], budget: null, updated_at: allowNothing.updated_at })
        assert.ok(allowNothing.updated_at > policy.updated_at)
        const allowAll = await store.updatePolicy(policy.id, { allow: null })
        assert.equal(allowAll?.allow, null)
        assert.deepEqual(await store.updatePolicy(policy.name, { allow: [] }), null, 'updatePolicy takes an id, not a name')
      })

      it('keeps max_in_flight and customer_max_in_flight as given, and patches them apart', async () => {
        const policy = await store.createPolicy({ ...policyInput(), customer_max_in_flight: 40 })
        assert.equal(policy.max_in_flight, 5)
        assert.equal(policy.customer_max_in_flight, 40)
        assert.deepEqual(await store.getPolicy(policy.id), policy)
        const patched = await store.updatePolicy(policy.id, { max_in_flight: null, customer_max_in_flight: 7 })
        assert.equal(patched?.max_in_flight, null)
        assert.equal(patched?.customer_max_in_flight, 7)
      })

      it('keeps on_governance_failure as given: deny and allow read back by id, name, list and resolveKey', async () => {
        for (const mode of ['deny', 'allow'] as const) {
          const policy = await store.createPolicy({ ...policyInput(), on_governance_failure: mode })
          assert.equal(policy.on_governance_failure, mode)
          assert.equal((await store.getPolicy(policy.id))?.on_governance_failure, mode)
          assert.equal((await store.getPolicy(policy.name))?.on_governance_failure, mode)
          assert.equal((await store.listPolicies()).find((p) => p.id === policy.id)?.on_governance_failure, mode)
          const h = hash()
          await store.createKey(keyInput(policy.id), 'vk_g', h)
          assert.equal((await store.resolveKey(h))?.policy.on_governance_failure, mode)
        }
      })

      it('patches on_governance_failure both ways and leaves it alone when a patch does not name it', async () => {
        const policy = await store.createPolicy(policyInput())
        assert.equal(policy.on_governance_failure, 'deny')
        await tick()
        const open = await store.updatePolicy(policy.id, { on_governance_failure: 'allow' })
        assert.ok(open !== null)
        assert.deepEqual(open, { ...policy, on_governance_failure: 'allow', updated_at: open.updated_at })
        assert.ok(open.updated_at > policy.updated_at)
        const renamed = await store.updatePolicy(policy.id, { name: unique('renamed'), budget: null })
        assert.equal(renamed?.on_governance_failure, 'allow')
        const closed = await store.updatePolicy(policy.id, { on_governance_failure: 'deny' })
        assert.equal(closed?.on_governance_failure, 'deny')
        assert.deepEqual(await store.getPolicy(policy.id), closed)
      })

      it('refuses to delete a policy keys still use, then deletes it with its bindings', async () => {
        const policy = await store.createPolicy(policyInput())
        const spare = await store.createPolicy(policyInput())
        const partner = await store.createPartner(partnerInput())
        const binding = await store.createBinding({ policy_id: policy.id, partner_id: partner.id, credentials: null })
        const key = await store.createKey(keyInput(policy.id), 'vk_live_ab', hash())
        await rejectsWith(store.deletePolicy(policy.id), ConflictError, 'policy')
        assert.deepEqual(await store.getPolicy(policy.id), policy)
        assert.deepEqual(await store.getBinding(binding.id), binding)

        await store.updateKey(key.id, { policy_id: spare.id })
        assert.deepEqual(await store.deletePolicy(policy.id), policy)
        assert.equal(await store.getPolicy(policy.id), null)
        assert.equal(await store.getBinding(binding.id), null)
      })
    })

    describe('bindings', () => {
      it('creates, reads, lists and deletes bindings, keeping null apart from []', async () => {
        const partner = await store.createPartner(partnerInput())
        const credential = await store.createCredential(partner.id, credentialInput())
        const first = await store.createBinding({ policy_id: (await store.createPolicy(policyInput())).id, partner_id: partner.id, credentials: null })
        const second = await store.createBinding({ policy_id: (await store.createPolicy(policyInput())).id, partner_id: partner.id, credentials: [credential.id] })
        const third = await store.createBinding({ policy_id: (await store.createPolicy(policyInput())).id, partner_id: partner.id, credentials: [] })
        assert.match(first.id, /^bnd_/)
        assert.match(first.created_at, ISO_UTC)
        assert.equal(first.credentials, null)
        assert.deepEqual(second.credentials, [credential.id])
        assert.deepEqual(third.credentials, [])
        assert.deepEqual(await store.getBinding(second.id), second)
        const listed = (await store.listBindings()).filter((b) => b.partner_id === partner.id)
        assert.deepEqual(ids(listed), ids([first, second, third]))
        assert.deepEqual(await store.deleteBinding(first.id), first)
        assert.equal(await store.getBinding(first.id), null)
        assert.equal(await store.deleteBinding(first.id), null)
      })

      it('refuses a second binding of the same policy and partner with ConflictError(partner)', async () => {
        const policy = await store.createPolicy(policyInput())
        const partner = await store.createPartner(partnerInput())
        await store.createBinding({ policy_id: policy.id, partner_id: partner.id, credentials: null })
        await rejectsWith(store.createBinding({ policy_id: policy.id, partner_id: partner.id, credentials: [] }), ConflictError, 'partner')
      })

      it('refuses unknown policies and partners with ValidationError naming which', async () => {
        const policy = await store.createPolicy(policyInput())
        const partner = await store.createPartner(partnerInput())
        await rejectsWith(store.createBinding({ policy_id: 'pol_missing', partner_id: partner.id, credentials: null }), ValidationError, 'policy')
        await rejectsWith(store.createBinding({ policy_id: policy.id, partner_id: 'prt_missing', credentials: null }), ValidationError, 'partner')
      })
    })

    describe('keys', () => {
      it('creates a key with its first hash and reads it back', async () => {
        const policy = await store.createPolicy(policyInput())
        const input = keyInput(policy.id, { customer: unique('cust'), team: 'risk', service: 'onboarding', expires_at: '2031-05-06T07:08:09.123Z' })
        const key = await store.createKey(input, 'vk_test_12', hash())
        assert.match(key.id, /^key_/)
        assert.equal(key.prefix, 'vk_test_12')
        assert.equal(key.revoked_at, null)
        assert.match(key.created_at, ISO_UTC)
        assert.equal(key.updated_at, key.created_at)
        assert.deepEqual({ ...key, id: undefined, prefix: undefined, revoked_at: undefined, created_at: undefined, updated_at: undefined },
          { ...input, id: undefined, prefix: undefined, revoked_at: undefined, created_at: undefined, updated_at: undefined })
        assert.deepEqual(await store.getKey(key.id), key)
        assert.equal(await store.getKey('key_missing'), null)
      })

      it('returns every time in one UTC form, whatever form it was given in', async () => {
        const policy = await store.createPolicy(policyInput())
        const key = await store.createKey(keyInput(policy.id, { expires_at: '2031-05-06T09:08:09+02:00' }), 'vk_t', hash())
        assert.equal(key.expires_at, '2031-05-06T07:08:09.000Z')
        const updated = await store.updateKey(key.id, { expires_at: '2032-01-01T00:00:00Z' })
        assert.equal(updated?.expires_at, '2032-01-01T00:00:00.000Z')
      })

      it('refuses a key for an unknown policy with ValidationError(policy)', async () => {
        await rejectsWith(store.createKey(keyInput('pol_missing'), 'vk_t', hash()), ValidationError, 'policy')
        const key = await store.createKey(keyInput((await store.createPolicy(policyInput())).id), 'vk_t', hash())
        await rejectsWith(store.updateKey(key.id, { policy_id: 'pol_missing' }), ValidationError, 'policy')
      })

      it('lists keys, filtered by policy and by customer', async () => {
        const p1 = await store.createPolicy(policyInput())
        const p2 = await store.createPolicy(policyInput())
        const c1 = unique('cust')
        const c2 = unique('cust')
        const k1 = await store.createKey(keyInput(p1.id, { customer: c1 }), 'vk_1', hash())
        const k2 = await store.createKey(keyInput(p1.id, { customer: c2 }), 'vk_2', hash())
        const k3 = await store.createKey(keyInput(p2.id, { customer: c1 }), 'vk_3', hash())
        assert.deepEqual(ids(await store.listKeys({ policy_id: p1.id })), ids([k1, k2]))
        assert.deepEqual(ids(await store.listKeys({ customer: c1 })), ids([k1, k3]))
        assert.deepEqual(await store.listKeys({ policy_id: p1.id, customer: c1 }), [k1])
        const all = await store.listKeys()
        assert.deepEqual(ids(all.filter((k) => [k1.id, k2.id, k3.id].includes(k.id))), ids([k1, k2, k3]))
        assert.deepEqual(await store.listKeys({ customer: unique('nobody') }), [])
      })

      it('patches only the given fields and advances updated_at', async () => {
        const policy = await store.createPolicy(policyInput())
        const key = await store.createKey(keyInput(policy.id, { customer: 'c', team: 't', expires_at: '2031-01-01T00:00:00.000Z' }), 'vk_p', hash())
        await tick()
        const updated = await store.updateKey(key.id, { name: 'renamed', team: null, expires_at: null })
        assert.ok(updated !== null)
        assert.deepEqual(updated, { ...key, name: 'renamed', team: null, expires_at: null, updated_at: updated.updated_at })
        assert.ok(updated.updated_at > key.updated_at)
        const sneaky = { prefix: 'vk_forged', revoked_at: '2000-01-01T00:00:00.000Z', environment: 'production' } as KeyPatch
        assert.deepEqual(await store.updateKey(key.id, sneaky), updated)
        assert.equal(await store.updateKey('key_missing', { name: 'x' }), null)
      })

      it('revokes a key once: a second revocation keeps the first time', async () => {
        const policy = await store.createPolicy(policyInput())
        const h = hash()
        const key = await store.createKey(keyInput(policy.id), 'vk_r', h)
        const at = new Date(Date.now() - 1000)
        await tick()
        const revoked = await store.revokeKey(key.id, at)
        assert.ok(revoked !== null)
        assert.equal(revoked.revoked_at, at.toISOString())
        assert.ok(revoked.updated_at > key.updated_at)
        assert.deepEqual(await store.revokeKey(key.id, new Date()), revoked)
        assert.deepEqual(await store.getKey(key.id), revoked)
        // a revoked key still resolves: the data plane answers key_revoked rather than invalid_key
        assert.deepEqual((await store.resolveKey(h))?.key, revoked)
        assert.equal(await store.revokeKey('key_missing', at), null)
      })

      it('rotates: the new hash resolves unlimited, old hashes get the earliest expiry', async () => {
        const policy = await store.createPolicy(policyInput())
        const [h1, h2, h3, h4] = [hash(), hash(), hash(), hash()]
        const key = await store.createKey(keyInput(policy.id), 'vk_old', h1)
        const soon = new Date(Date.now() + 60_000)
        await tick()
        const rotated = await store.rotateKey(key.id, h2, 'vk_new', soon)
        assert.ok(rotated !== null)
        assert.deepEqual(rotated, { ...key, prefix: 'vk_new', updated_at: rotated.updated_at })
        assert.ok(rotated.updated_at > key.updated_at)
        assert.equal((await store.resolveKey(h1))?.hash_expires_at, soon.toISOString())
        assert.equal((await store.resolveKey(h2))?.hash_expires_at, null)
        assert.equal((await store.resolveKey(h2))?.key.id, key.id)

        // a later grace period does not extend the earlier one
        const later = new Date(Date.now() + 3_600_000)
        await store.rotateKey(key.id, h3, 'vk_3', later)
        assert.equal((await store.resolveKey(h1))?.hash_expires_at, soon.toISOString())
        assert.equal((await store.resolveKey(h2))?.hash_expires_at, later.toISOString())
        assert.equal((await store.resolveKey(h3))?.hash_expires_at, null)

        // an earlier one cuts every old hash short
        const now = new Date()
        await store.rotateKey(key.id, h4, 'vk_4', now)
        for (const old of [h1, h2, h3]) assert.equal((await store.resolveKey(old))?.hash_expires_at, now.toISOString())
        assert.equal((await store.resolveKey(h4))?.hash_expires_at, null)
        assert.equal((await store.getKey(key.id))?.prefix, 'vk_4')
      })

      it('rotating an unknown key answers null and stores no hash', async () => {
        const h = hash()
        assert.equal(await store.rotateKey('key_missing', h, 'vk_x', new Date()), null)
        assert.equal(await store.resolveKey(h), null)
      })
    })

    describe('resolveKey', () => {
      it('returns the key with its policy, bindings, bound partners and all their credentials', async () => {
        const policy = await store.createPolicy(policyInput())
        const acme = await store.createPartner(partnerInput())
        const globex = await store.createPartner(partnerInput())
        const unbound = await store.createPartner(partnerInput())
        const acmeSandbox = await store.createCredential(acme.id, credentialInput('sandbox', 'sandbox'))
        const acmeProduction = await store.createCredential(acme.id, credentialInput('production', 'production'))
        const globexMain = await store.createCredential(globex.id, credentialInput())
        await store.createCredential(unbound.id, credentialInput())
        const toAcme = await store.createBinding({ policy_id: policy.id, partner_id: acme.id, credentials: null })
        const toGlobex = await store.createBinding({ policy_id: policy.id, partner_id: globex.id, credentials: [globexMain.id] })
        const h = hash()
        const key = await store.createKey(keyInput(policy.id, { customer: 'cust_9' }), 'vk_live_rs', h)

        const resolved = await store.resolveKey(h)
        assert.ok(resolved !== null)
        assert.deepEqual(resolved.key, key)
        assert.equal(resolved.hash_expires_at, null)
        assert.deepEqual(resolved.policy, policy)
        const bindings = [...resolved.bindings].sort((a, b) => a.binding.id < b.binding.id ? -1 : 1)
        const expected = [
          { binding: toAcme, partner: acme, credentials: [acmeProduction, acmeSandbox] },
          { binding: toGlobex, partner: globex, credentials: [globexMain] },
        ].sort((a, b) => a.binding.id < b.binding.id ? -1 : 1)
        assert.deepEqual(bindings, expected)
      })

      it('answers null for an unknown hash', async () => {
        assert.equal(await store.resolveKey(hash()), null)
      })

      it('resolves a policy without bindings to an empty list', async () => {
        const h = hash()
        await store.createKey(keyInput((await store.createPolicy(policyInput())).id), 'vk_e', h)
        assert.deepEqual((await store.resolveKey(h))?.bindings, [])
      })

      it('still resolves an expired hash, with its expiry: the caller decides', async () => {
        const policy = await store.createPolicy(policyInput())
        const [h1, h2] = [hash(), hash()]
        const key = await store.createKey(keyInput(policy.id), 'vk_x', h1)
        const past = new Date(Date.now() - 60_000)
        await store.rotateKey(key.id, h2, 'vk_y', past)
        const resolved = await store.resolveKey(h1)
        assert.equal(resolved?.hash_expires_at, past.toISOString())
        assert.equal(resolved?.key.id, key.id)
      })
    })
  })
}
