// /admin/partners/{slug}/credentials and /admin/credentials/{id}: secrets are accepted, sealed,
// and never shown again, in any response or log line.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { assertConflict, assertError, assertInvalid, partnerBody, startAdmin, type AdminHarness } from './admin-harness.js'

const PLAINTEXT = 'sk_live_INLINE_PLAINTEXT_91f3c2'
const ROTATED = 'sk_live_ROTATED_PLAINTEXT_77aa01'

describe('credentials', () => {
  let admin: AdminHarness
  let partnerId = ''
  before(async () => {
    admin = await startAdmin()
    partnerId = (await admin.call('POST', '/admin/partners', partnerBody('acme'))).json.id
    await admin.call('POST', '/admin/partners', partnerBody('other'))
  })
  after(async () => {
    // Whatever happened above, the plaintext never came back, nor reached the log.
    for (const body of admin.bodies) {
      assert.ok(!body.includes(PLAINTEXT) && !body.includes(ROTATED), `a response leaked a secret: ${body}`)
    }
    const logs = admin.logs.join('\n')
    assert.ok(!logs.includes(PLAINTEXT) && !logs.includes(ROTATED), 'the log saw a secret')
    await admin.close()
  })

  it('creates an inline credential, seals it, and shows only the provider', async () => {
    const reply = await admin.call('POST', '/admin/partners/acme/credentials', {
      name: 'main', environment: 'production', secret: { provider: 'inline', value: PLAINTEXT },
    })
    assert.equal(reply.status, 201, reply.text)
    assert.deepEqual(Object.keys(reply.json.secret), ['provider', 'sealed'])
    assert.equal(reply.json.secret.provider, 'inline')
    assert.match(reply.json.secret.sealed, /^[0-9a-f]{16}$/)
    assert.equal(reply.json.partner_id, partnerId)
    assert.equal(reply.json.weight, 1)
    assert.equal(reply.json.rate_limit, null)
    assert.ok(!reply.text.includes('ciphertext'))
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'partner', id: partnerId })

    const stored = await admin.store.getCredential(reply.json.id)
    assert.ok(stored !== null && stored.secret !== null && stored.secret.provider === 'inline')
    assert.ok(!JSON.stringify(stored).includes(PLAINTEXT))
    assert.equal(admin.cipher?.decrypt(stored.secret.ciphertext), PLAINTEXT)
  })

  it('creates env and file credentials showing provider and ref, with weight and rate limit', async () => {
    const env = await admin.call('POST', '/admin/partners/acme/credentials', {
      name: 'from-env', environment: 'sandbox', secret: { provider: 'env', ref: 'ACME_SANDBOX_TOKEN' },
      weight: 3, rate_limit: { requests: 10, per_seconds: 1 },
    })
    assert.equal(env.status, 201, env.text)
    assert.deepEqual(env.json.secret, { provider: 'env', ref: 'ACME_SANDBOX_TOKEN' })
    assert.equal(env.json.weight, 3)
    assert.deepEqual(env.json.rate_limit, { requests: 10, per_seconds: 1, burst: 10 })
    const file = await admin.call('POST', '/admin/partners/acme/credentials', {
      name: 'from-file', environment: 'production', secret: { provider: 'file', ref: '/run/secrets/acme' },
      rate_limit: { requests: 100, per_seconds: 60, burst: 5 },
    })
    assert.equal(file.status, 201, file.text)
    assert.deepEqual(file.json.secret, { provider: 'file', ref: '/run/secrets/acme' })
    assert.deepEqual(file.json.rate_limit, { requests: 100, per_seconds: 60, burst: 5 })
  })

  it("lists a partner's credentials without secret values", async () => {
    const reply = await admin.call('GET', '/admin/partners/acme/credentials')
    assert.equal(reply.status, 200)
    assert.deepEqual(reply.json.map((c: { name: string }) => c.name).sort(), ['from-env', 'from-file', 'main'])
    const inline = reply.json.find((c: { name: string }) => c.name === 'main')
    assert.equal(inline.secret.provider, 'inline')
    assert.deepEqual(Object.keys(inline.secret), ['provider', 'sealed'])
    assert.deepEqual((await admin.call('GET', '/admin/partners/other/credentials')).json, [])
  })

  it('answers 404 for credentials of an unknown partner and for unknown credential ids', async () => {
    assertError(await admin.call('GET', '/admin/partners/nobody/credentials'), 404, 'not_found')
    assertError(await admin.call('POST', '/admin/partners/nobody/credentials', {
      name: 'x', environment: 'production', secret: { provider: 'env', ref: 'X' },
    }), 404, 'not_found')
    assertError(await admin.call('PATCH', '/admin/credentials/cred_nope', { weight: 2 }), 404, 'not_found')
    assertError(await admin.call('DELETE', '/admin/credentials/cred_nope'), 404, 'not_found')
  })

  it('refuses a duplicate name within a partner with 409 naming name, but allows it on another partner', async () => {
    const body = { name: 'main', environment: 'production', secret: { provider: 'env', ref: 'X' } }
    assertConflict(await admin.call('POST', '/admin/partners/acme/credentials', body), 'name')
    assert.equal((await admin.call('POST', '/admin/partners/other/credentials', body)).status, 201)
  })

  const valid = { name: 'c', environment: 'production', secret: { provider: 'env', ref: 'TOKEN' } }
  const invalid: Array<[string, Record<string, unknown>, string]> = [
    ['missing name', { name: undefined }, 'name'],
    ['empty name', { name: '' }, 'name'],
    ['name with a control character', { name: 'a\u0007b' }, 'name'],
    ['missing environment', { environment: undefined }, 'environment'],
    ['environment the partner lacks', { environment: 'staging' }, 'environment'],
    ['malformed environment', { environment: 'Prod!' }, 'environment'],
    ['missing secret', { secret: undefined }, 'secret'],
    ['secret not an object', { secret: 'hunter2' }, 'secret'],
    ['unknown provider', { secret: { provider: 'vault', ref: 'x' } }, 'secret.provider'],
    ['env secret without ref', { secret: { provider: 'env' } }, 'secret.ref'],
    ['env secret with an invalid variable name', { secret: { provider: 'env', ref: 'MY-VAR' } }, 'secret.ref'],
    ["env secret naming RelayKey's HMAC pepper", { secret: { provider: 'env', ref: 'RELAYKEY_HMAC_SECRET' } }, 'secret.ref'],
    ["env secret naming RelayKey's database URL", { secret: { provider: 'env', ref: 'DATABASE_URL' } }, 'secret.ref'],
    ['file secret with a relative path', { secret: { provider: 'file', ref: 'secrets/acme' } }, 'secret.ref'],
    ['file secret outside RELAYKEY_SECRET_FILES_DIR (the data dir\'s master key)', { secret: { provider: 'file', ref: '/var/lib/relaykey/master-key' } }, 'secret.ref'],
    ['file secret climbing out of RELAYKEY_SECRET_FILES_DIR', { secret: { provider: 'file', ref: '/run/secrets/../../proc/self/environ' } }, 'secret.ref'],
    ['inline secret with an empty value', { secret: { provider: 'inline', value: '' } }, 'secret.value'],
    ['inline secret with a non-string value', { secret: { provider: 'inline', value: 12345 } }, 'secret.value'],
    ['inline secret with a ref', { secret: { provider: 'inline', value: 'x', ref: 'y' } }, 'secret.ref'],
    ['inline secret with CR LF (header injection, and a 502 on every request)', { secret: { provider: 'inline', value: 'tok\r\nX-Evil: 1' } }, 'secret.value'],
    ['inline secret with NUL', { secret: { provider: 'inline', value: 'tok\u0000' } }, 'secret.value'],
    ['inline secret with an unpaired surrogate', { secret: { provider: 'inline', value: 'tok\ud800' } }, 'secret.value'],
    ['env secret with a value', { secret: { provider: 'env', ref: 'X', value: PLAINTEXT } }, 'secret.value'],
    ['zero weight', { weight: 0 }, 'weight'],
    ['fractional weight', { weight: 1.5 }, 'weight'],
    ['rate limit not an object', { rate_limit: 10 }, 'rate_limit'],
    ['rate limit without requests', { rate_limit: { per_seconds: 1 } }, 'rate_limit.requests'],
    ['rate limit with zero requests', { rate_limit: { requests: 0, per_seconds: 1 } }, 'rate_limit.requests'],
    ['rate limit faster than GCRA can keep exactly', { rate_limit: { requests: 200_001, per_seconds: 2 } }, 'rate_limit.requests'],
    ['rate limit without per_seconds', { rate_limit: { requests: 5 } }, 'rate_limit.per_seconds'],
    ['rate limit with zero burst', { rate_limit: { requests: 5, per_seconds: 1, burst: 0 } }, 'rate_limit.burst'],
    ['rate limit with an unknown member', { rate_limit: { requests: 5, per_seconds: 1, window: 'x' } }, 'rate_limit.window'],
    ['unknown top-level field', { partner_id: 'prt_x' }, 'partner_id'],
  ]
  for (const [what, overrides, field] of invalid) {
    it(`refuses ${what} naming ${field}`, async () => {
      const reply = await admin.call('POST', '/admin/partners/acme/credentials', { ...valid, ...overrides })
      assertInvalid(reply, field)
      assert.ok(!reply.text.includes(PLAINTEXT))
    })
  }

  it('patches name, weight, rate limit and secret, publishing the partner', async () => {
    const created = await admin.call('POST', '/admin/partners/acme/credentials', {
      name: 'patch-me', environment: 'production', secret: { provider: 'env', ref: 'A' },
    })
    const id = created.json.id
    const renamed = await admin.call('PATCH', `/admin/credentials/${id}`, { name: 'patched', weight: 7, rate_limit: { requests: 3, per_seconds: 10 } })
    assert.equal(renamed.status, 200, renamed.text)
    assert.equal(renamed.json.name, 'patched')
    assert.equal(renamed.json.weight, 7)
    assert.deepEqual(renamed.json.rate_limit, { requests: 3, per_seconds: 10, burst: 3 })
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'partner', id: partnerId })
    const sealed = await admin.call('PATCH', `/admin/credentials/${id}`, { secret: { provider: 'inline', value: ROTATED }, rate_limit: null })
    assert.equal(sealed.status, 200, sealed.text)
    assert.equal(sealed.json.secret.provider, 'inline')
    assert.deepEqual(Object.keys(sealed.json.secret), ['provider', 'sealed'])
    assert.equal(sealed.json.rate_limit, null)
    const stored = await admin.store.getCredential(id)
    assert.ok(stored !== null && stored.secret !== null && stored.secret.provider === 'inline')
    assert.equal(admin.cipher?.decrypt(stored.secret.ciphertext), ROTATED)
  })

  it('refuses an environment change with 400 naming environment, but accepts the same environment', async () => {
    const list = (await admin.call('GET', '/admin/partners/acme/credentials')).json
    const main = list.find((c: { name: string }) => c.name === 'main')
    assertInvalid(await admin.call('PATCH', `/admin/credentials/${main.id}`, { environment: 'sandbox' }), 'environment')
    assert.equal((await admin.call('PATCH', `/admin/credentials/${main.id}`, { environment: 'production' })).status, 200)
  })

  it('validates patches like creates', async () => {
    const main = (await admin.call('GET', '/admin/partners/acme/credentials')).json.find((c: { name: string }) => c.name === 'main')
    const path = `/admin/credentials/${main.id}`
    assertInvalid(await admin.call('PATCH', path, { weight: -1 }), 'weight')
    assertInvalid(await admin.call('PATCH', path, { secret: { provider: 'file', ref: 'rel' } }), 'secret.ref')
    assertInvalid(await admin.call('PATCH', path, { rate_limit: { requests: 1 } }), 'rate_limit.per_seconds')
    assertInvalid(await admin.call('PATCH', path, { id: 'x' }), 'id')
    assertConflict(await admin.call('PATCH', path, { name: 'from-file' }), 'name')
  })

  it('refuses to delete a credential a binding lists, with 409', async () => {
    const cred = await admin.call('POST', '/admin/partners/acme/credentials', {
      name: 'pinned', environment: 'production', secret: { provider: 'env', ref: 'P' },
    })
    const policy = await admin.call('POST', '/admin/policies', { name: 'pins' })
    const binding = await admin.call('POST', '/admin/bindings', { policy: policy.json.id, partner: 'acme', credentials: [cred.json.id] })
    assert.equal(binding.status, 201, binding.text)
    assertConflict(await admin.call('DELETE', `/admin/credentials/${cred.json.id}`), 'credential')
    assert.equal((await admin.call('DELETE', `/admin/bindings/${binding.json.id}`)).status, 204)
    assert.equal((await admin.call('DELETE', `/admin/credentials/${cred.json.id}`)).status, 204)
  })

  it('deletes a credential with 204 and publishes its partner', async () => {
    const cred = await admin.call('POST', '/admin/partners/acme/credentials', {
      name: 'temp', environment: 'sandbox', secret: { provider: 'inline', value: PLAINTEXT },
    })
    const reply = await admin.call('DELETE', `/admin/credentials/${cred.json.id}`)
    assert.equal(reply.status, 204)
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'partner', id: partnerId })
    assert.equal(await admin.store.getCredential(cred.json.id), null)
    assertError(await admin.call('DELETE', `/admin/credentials/${cred.json.id}`), 404, 'not_found')
  })
})

describe('credentials without RELAYKEY_SECRET_FILES_DIR', () => {
  let admin: AdminHarness
  before(async () => {
    admin = await startAdmin({ secretFilesDir: null })
    await admin.call('POST', '/admin/partners', partnerBody('acme'))
  })
  after(async () => { await admin.close() })

  it('refuses every file secret with 400 naming secret.ref and the setting', async () => {
    const reply = await admin.call('POST', '/admin/partners/acme/credentials', {
      name: 'from-file', environment: 'production', secret: { provider: 'file', ref: '/run/secrets/acme' },
    })
    assertInvalid(reply, 'secret.ref')
    assert.match(reply.json.error.message, /RELAYKEY_SECRET_FILES_DIR/)
  })
})

describe('credentials without a master key', () => {
  let admin: AdminHarness
  before(async () => {
    admin = await startAdmin({ cipher: false })
    await admin.call('POST', '/admin/partners', partnerBody('acme'))
  })
  after(async () => { await admin.close() })

  it('refuses inline secrets with 400 naming secret and RELAYKEY_MASTER_KEY', async () => {
    const reply = await admin.call('POST', '/admin/partners/acme/credentials', {
      name: 'main', environment: 'production', secret: { provider: 'inline', value: PLAINTEXT },
    })
    assertInvalid(reply, 'secret')
    assert.match(reply.json.error.message, /RELAYKEY_MASTER_KEY/)
    assert.ok(!reply.text.includes(PLAINTEXT))
  })

  it('still accepts env and file secrets', async () => {
    const reply = await admin.call('POST', '/admin/partners/acme/credentials', {
      name: 'main', environment: 'production', secret: { provider: 'env', ref: 'ACME_TOKEN' },
    })
    assert.equal(reply.status, 201, reply.text)
  })
})
