// /admin/partners: create with defaults, list, get, patch (merge rules, slug rename), delete,
// every validation rule, conflicts and the invalidations published.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { assertConflict, assertError, assertInvalid, partnerBody, startAdmin, type AdminHarness } from './admin-harness.js'

describe('partners', () => {
  let admin: AdminHarness
  before(async () => { admin = await startAdmin() })
  after(async () => { await admin.close() })

  it('creates a partner with defaults filled and base URLs normalised, and publishes it', async () => {
    const reply = await admin.call('POST', '/admin/partners', partnerBody('acme', {
      base_urls: { production: 'https://API.Example.com/v1/', sandbox: 'http://sandbox.example.com' },
    }))
    assert.equal(reply.status, 201, reply.text)
    const p = reply.json
    assert.equal(p.slug, 'acme')
    assert.equal(typeof p.id, 'string')
    assert.deepEqual(p.base_urls, { production: 'https://api.example.com/v1', sandbox: 'http://sandbox.example.com' })
    assert.deepEqual(p.auth, { type: 'header', name: 'X-App-Token', prefix: '' })
    assert.deepEqual(p.timeouts, { connect_ms: 5000, request_ms: 30000 })
    assert.deepEqual(p.retry, { max_attempts: 2, base_delay_ms: 100, max_delay_ms: 2000, on_status: [502, 503, 504], respect_retry_after: true, budget_percent: 20, budget_min_per_second: 3 })
    assert.deepEqual(p.circuit_breaker, { failure_threshold: 5, open_ms: 30000, max_in_flight: 1000 })
    assert.match(p.created_at, /^\d{4}-\d{2}-\d{2}T/)
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'partner', id: p.id })
  })

  it('defaults the header auth prefix to empty and accepts bearer and query auth', async () => {
    const header = await admin.call('POST', '/admin/partners', partnerBody('hdr', { auth: { type: 'header', name: 'Authorization' } }))
    assert.equal(header.status, 201, header.text)
    assert.deepEqual(header.json.auth, { type: 'header', name: 'Authorization', prefix: '' })
    const bearer = await admin.call('POST', '/admin/partners', partnerBody('bearer-co', { auth: { type: 'bearer' } }))
    assert.deepEqual(bearer.json.auth, { type: 'bearer' })
    const query = await admin.call('POST', '/admin/partners', partnerBody('query-co', { auth: { type: 'query', name: 'api_key' } }))
    assert.deepEqual(query.json.auth, { type: 'query', name: 'api_key' })
  })

  it('keeps given settings and fills only the missing members', async () => {
    const reply = await admin.call('POST', '/admin/partners', partnerBody('tuned', {
      timeouts: { request_ms: 1000 },
      retry: { max_attempts: 4, on_status: [429, 503], respect_retry_after: false },
      circuit_breaker: { failure_threshold: 2 },
    }))
    assert.equal(reply.status, 201, reply.text)
    assert.deepEqual(reply.json.timeouts, { connect_ms: 5000, request_ms: 1000 })
    assert.deepEqual(reply.json.retry, { max_attempts: 4, base_delay_ms: 100, max_delay_ms: 2000, on_status: [429, 503], respect_retry_after: false, budget_percent: 20, budget_min_per_second: 3 })
    assert.deepEqual(reply.json.circuit_breaker, { failure_threshold: 2, open_ms: 30000, max_in_flight: 1000 })
  })

  it('lists and gets partners', async () => {
    const list = await admin.call('GET', '/admin/partners')
    assert.equal(list.status, 200)
    assert.ok(Array.isArray(list.json))
    assert.ok(list.json.some((p: { slug: string }) => p.slug === 'acme'))
    const one = await admin.call('GET', '/admin/partners/acme')
    assert.equal(one.status, 200)
    assert.equal(one.json.slug, 'acme')
  })

  it('answers 404 not_found for an unknown slug on GET, PATCH, DELETE', async () => {
    assertError(await admin.call('GET', '/admin/partners/nobody'), 404, 'not_found')
    assertError(await admin.call('PATCH', '/admin/partners/nobody', { retry: { max_attempts: 3 } }), 404, 'not_found')
    assertError(await admin.call('DELETE', '/admin/partners/nobody'), 404, 'not_found')
  })

  it('refuses a duplicate slug with 409 conflict naming slug', async () => {
    assertConflict(await admin.call('POST', '/admin/partners', partnerBody('acme')), 'slug')
  })

  const invalid: Array<[string, Record<string, unknown>, string]> = [
    ['missing slug', { slug: undefined }, 'slug'],
    ['uppercase slug', { slug: 'Acme' }, 'slug'],
    ['slug starting with a dash', { slug: '-acme' }, 'slug'],
    ['slug of 64 characters', { slug: 'a'.repeat(64) }, 'slug'],
    ['slug not a string', { slug: 42 }, 'slug'],
    ['missing base_urls', { base_urls: undefined }, 'base_urls'],
    ['base_urls not an object', { base_urls: 'https://x.example' }, 'base_urls'],
    ['empty base_urls', { base_urls: {} }, 'base_urls'],
    ['bad environment name', { base_urls: { Prod: 'https://x.example' } }, 'base_urls.Prod'],
    ['environment name starting with a digit', { base_urls: { '1prod': 'https://x.example' } }, 'base_urls.1prod'],
    ['relative base URL', { base_urls: { production: 'api.example.com' } }, 'base_urls.production'],
    ['ftp base URL', { base_urls: { production: 'ftp://api.example.com' } }, 'base_urls.production'],
    ['base URL with userinfo', { base_urls: { production: 'https://user:pw@api.example.com' } }, 'base_urls.production'],
    ['base URL with query', { base_urls: { production: 'https://api.example.com/v1?x=1' } }, 'base_urls.production'],
    ['base URL with empty query', { base_urls: { production: 'https://api.example.com/v1?' } }, 'base_urls.production'],
    ['base URL with fragment', { base_urls: { production: 'https://api.example.com/v1#top' } }, 'base_urls.production'],
    ['base URL not a string', { base_urls: { production: 7 } }, 'base_urls.production'],
    ['missing auth', { auth: undefined }, 'auth'],
    ['auth not an object', { auth: 'bearer' }, 'auth'],
    ['unknown auth type', { auth: { type: 'basic' } }, 'auth.type'],
    ['header auth without name', { auth: { type: 'header' } }, 'auth.name'],
    ['header auth with invalid name', { auth: { type: 'header', name: 'X Token' } }, 'auth.name'],
    ['header auth on Host', { auth: { type: 'header', name: 'Host' } }, 'auth.name'],
    ['header auth on X-RelayKey', { auth: { type: 'header', name: 'x-relaykey' } }, 'auth.name'],
    ['header auth on a hop-by-hop header', { auth: { type: 'header', name: 'Connection' } }, 'auth.name'],
    ['header prefix not a string', { auth: { type: 'header', name: 'X-Key', prefix: 5 } }, 'auth.prefix'],
    ['header prefix with a newline', { auth: { type: 'header', name: 'X-Key', prefix: 'a\r\nb' } }, 'auth.prefix'],
    ['unknown member in header auth', { auth: { type: 'header', name: 'X-Key', value: 'x' } }, 'auth.value'],
    ['bearer auth with a name', { auth: { type: 'bearer', name: 'x' } }, 'auth.name'],
    ['query auth without name', { auth: { type: 'query' } }, 'auth.name'],
    ['query auth with invalid name', { auth: { type: 'query', name: 'a&b' } }, 'auth.name'],
    ['timeouts not an object', { timeouts: 5 }, 'timeouts'],
    ['zero connect timeout', { timeouts: { connect_ms: 0 } }, 'timeouts.connect_ms'],
    ['fractional request timeout', { timeouts: { request_ms: 1.5 } }, 'timeouts.request_ms'],
    ['string request timeout', { timeouts: { request_ms: '100' } }, 'timeouts.request_ms'],
    ['unknown timeout', { timeouts: { idle_ms: 5 } }, 'timeouts.idle_ms'],
    ['zero max_attempts', { retry: { max_attempts: 0 } }, 'retry.max_attempts'],
    ['too many attempts', { retry: { max_attempts: 11 } }, 'retry.max_attempts'],
    ['negative base delay', { retry: { base_delay_ms: -1 } }, 'retry.base_delay_ms'],
    ['max delay below base delay', { retry: { base_delay_ms: 500, max_delay_ms: 100 } }, 'retry.max_delay_ms'],
    ['on_status not an array', { retry: { on_status: 503 } }, 'retry.on_status'],
    ['on_status with a string', { retry: { on_status: [502, '503'] } }, 'retry.on_status[1]'],
    ['on_status with a 2xx', { retry: { on_status: [200] } }, 'retry.on_status[0]'],
    ['on_status with a duplicate', { retry: { on_status: [503, 503] } }, 'retry.on_status[1]'],
    ['respect_retry_after not a boolean', { retry: { respect_retry_after: 'yes' } }, 'retry.respect_retry_after'],
    ['unknown retry member', { retry: { jitter: true } }, 'retry.jitter'],
    ['zero failure threshold', { circuit_breaker: { failure_threshold: 0 } }, 'circuit_breaker.failure_threshold'],
    ['negative open_ms', { circuit_breaker: { open_ms: -5 } }, 'circuit_breaker.open_ms'],
    ['zero max_in_flight', { circuit_breaker: { max_in_flight: 0 } }, 'circuit_breaker.max_in_flight'],
    ['retry budget over 100 %', { retry: { budget_percent: 101 } }, 'retry.budget_percent'],
    ['negative retry floor', { retry: { budget_min_per_second: -1 } }, 'retry.budget_min_per_second'],
    ['unknown breaker member', { circuit_breaker: { half_open: 1 } }, 'circuit_breaker.half_open'],
    ['unknown top-level field', { credentials: [] }, 'credentials'],
  ]
  for (const [what, overrides, field] of invalid) {
    it(`refuses ${what} naming ${field}`, async () => {
      const body = partnerBody('valid-slug', overrides)
      const reply = await admin.call('POST', '/admin/partners', body)
      assertInvalid(reply, field)
    })
  }

  it('publishes nothing for refused requests', async () => {
    const before = admin.publisher.published.length
    await admin.call('POST', '/admin/partners', partnerBody('x', { retry: { max_attempts: 0 } }))
    await admin.call('PATCH', '/admin/partners/acme', { timeouts: { connect_ms: -1 } })
    assert.equal(admin.publisher.published.length, before)
  })
})

describe('partner patch', () => {
  let admin: AdminHarness
  before(async () => { admin = await startAdmin() })
  after(async () => { await admin.close() })

  it('merges settings: other members keep their values, null restores a default', async () => {
    await admin.call('POST', '/admin/partners', partnerBody('merge', { retry: { max_attempts: 5, base_delay_ms: 200 } }))
    const patched = await admin.call('PATCH', '/admin/partners/merge', { retry: { max_attempts: 3, base_delay_ms: null } })
    assert.equal(patched.status, 200, patched.text)
    assert.deepEqual(patched.json.retry, { max_attempts: 3, base_delay_ms: 100, max_delay_ms: 2000, on_status: [502, 503, 504], respect_retry_after: true, budget_percent: 20, budget_min_per_second: 3 })
    const reset = await admin.call('PATCH', '/admin/partners/merge', { timeouts: { connect_ms: 100 }, retry: null })
    assert.deepEqual(reset.json.timeouts, { connect_ms: 100, request_ms: 30000 })
    assert.equal(reset.json.retry.max_attempts, 2)
    assert.deepEqual((await admin.call('GET', '/admin/partners/merge')).json.timeouts, { connect_ms: 100, request_ms: 30000 })
  })

  it('validates the merged settings as a whole', async () => {
    assertInvalid(await admin.call('PATCH', '/admin/partners/merge', { retry: { max_delay_ms: 50 } }), 'retry.max_delay_ms')
  })

  it('adds, changes and removes environments in base_urls', async () => {
    const added = await admin.call('PATCH', '/admin/partners/merge', { base_urls: { staging: 'https://staging.example.com/' } })
    assert.equal(added.status, 200, added.text)
    assert.deepEqual(Object.keys(added.json.base_urls).sort(), ['production', 'sandbox', 'staging'])
    assert.equal(added.json.base_urls.staging, 'https://staging.example.com')
    const removed = await admin.call('PATCH', '/admin/partners/merge', { base_urls: { sandbox: null, staging: null } })
    assert.deepEqual(removed.json.base_urls, { production: 'https://api.example.com/v1' })
    assertInvalid(await admin.call('PATCH', '/admin/partners/merge', { base_urls: { production: null } }), 'base_urls')
    assertInvalid(await admin.call('PATCH', '/admin/partners/merge', { base_urls: null }), 'base_urls')
    assertInvalid(await admin.call('PATCH', '/admin/partners/merge', { base_urls: { production: 'mailto:x@y' } }), 'base_urls.production')
  })

  it('refuses to remove an environment a credential still uses, with 409 naming it', async () => {
    await admin.call('POST', '/admin/partners', partnerBody('envs'))
    const cred = await admin.call('POST', '/admin/partners/envs/credentials', {
      name: 'sb', environment: 'sandbox', secret: { provider: 'env', ref: 'SANDBOX_TOKEN' },
    })
    assert.equal(cred.status, 201, cred.text)
    assertConflict(await admin.call('PATCH', '/admin/partners/envs', { base_urls: { sandbox: null } }), 'base_urls.sandbox')
    assert.equal((await admin.call('DELETE', `/admin/credentials/${cred.json.id}`)).status, 204)
    assert.equal((await admin.call('PATCH', '/admin/partners/envs', { base_urls: { sandbox: null } })).status, 200)
  })

  it('replaces auth as a whole', async () => {
    const reply = await admin.call('PATCH', '/admin/partners/merge', { auth: { type: 'query', name: 'token' } })
    assert.deepEqual(reply.json.auth, { type: 'query', name: 'token' })
    assertInvalid(await admin.call('PATCH', '/admin/partners/merge', { auth: { type: 'query' } }), 'auth.name')
  })

  it('renames the slug and publishes the partner id', async () => {
    const created = await admin.call('POST', '/admin/partners', partnerBody('old-name'))
    const reply = await admin.call('PATCH', '/admin/partners/old-name', { slug: 'new-name' })
    assert.equal(reply.status, 200, reply.text)
    assert.equal(reply.json.slug, 'new-name')
    assert.equal(reply.json.id, created.json.id)
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'partner', id: created.json.id })
    assertError(await admin.call('GET', '/admin/partners/old-name'), 404, 'not_found')
    assert.equal((await admin.call('GET', '/admin/partners/new-name')).status, 200)
    assertInvalid(await admin.call('PATCH', '/admin/partners/new-name', { slug: 'Bad Slug' }), 'slug')
  })

  it('refuses renaming to a taken slug with 409', async () => {
    assertConflict(await admin.call('PATCH', '/admin/partners/new-name', { slug: 'merge' }), 'slug')
  })

  it('refuses unknown fields and non-object bodies', async () => {
    assertInvalid(await admin.call('PATCH', '/admin/partners/merge', { id: 'prt_x' }), 'id')
    assertInvalid(await admin.call('PATCH', '/admin/partners/merge', { retry: { tries: 1 } }), 'retry.tries')
    assertInvalid(await admin.call('PATCH', '/admin/partners/merge', [1]), 'body')
  })

  it('answers an empty patch with the unchanged partner', async () => {
    const before = await admin.call('GET', '/admin/partners/merge')
    const reply = await admin.call('PATCH', '/admin/partners/merge', {})
    assert.equal(reply.status, 200)
    assert.deepEqual(reply.json, before.json)
  })

  it('deletes a partner with 204, publishes its id as deleted, and then knows it no more', async () => {
    const created = await admin.call('POST', '/admin/partners', partnerBody('doomed'))
    const reply = await admin.call('DELETE', '/admin/partners/doomed')
    assert.equal(reply.status, 204)
    assert.equal(reply.text, '')
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'partner', id: created.json.id, deleted: true })
    assertError(await admin.call('GET', '/admin/partners/doomed'), 404, 'not_found')
    assertError(await admin.call('DELETE', '/admin/partners/doomed'), 404, 'not_found')
  })
})
