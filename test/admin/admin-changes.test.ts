// Named admin tokens and the change log, over HTTP: a read token is refused every call that
// changes state, and every change a write token makes appears once in GET /admin/changes under
// the token's name, field by field, with no secret value and no raw key anywhere in it.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { adminOpenApi } from '../helpers/openapi-check.js'
import { canonicalJson, fieldChanges } from '../../src/admin-changes/admin-change.js'
import { assertError, partnerBody, READ_TOKEN, startAdmin, type AdminHarness, type Reply } from './admin-harness.js'

const INLINE_SECRET = 'inline-secret-value-0123456789'
const ROTATED_SECRET = 'rotated-secret-value-9876543210'

describe('admin tokens: read and write', () => {
  let admin: AdminHarness
  before(async () => { admin = await startAdmin() })
  after(async () => { await admin.close() })

  it('a read token gets 403 forbidden on every documented mutation, and nothing changes', async () => {
    const mutations = adminOpenApi().operations().filter((op) => !op.startsWith('GET '))
    assert.ok(mutations.length >= 15, mutations.join(', '))
    for (const op of mutations) {
      const [method, template] = op.split(' ') as [string, string]
      const path = template.replace('{slug}', 'acme').replace('{id}', 'some-id')
      const body = method === 'POST' && path === '/admin/partners' ? partnerBody('acme') : {}
      const reply = await admin.call(method, path, body, { authorization: `Bearer ${READ_TOKEN}` })
      assertError(reply, 403, 'forbidden')
      assert.match(reply.json.error.message, /token auditor may only read/)
    }
    assert.equal((await admin.call('GET', '/admin/partners/acme')).status, 404, 'a refused create still created the partner')
    assert.deepEqual((await admin.call('GET', '/admin/changes')).json.changes, [])
  })

  it('a read token reads: lists, the change log, readiness', async () => {
    for (const path of ['/admin/partners', '/admin/policies', '/admin/keys', '/admin/changes', '/ready']) {
      const reply = await admin.call('GET', path, undefined, { authorization: `Bearer ${READ_TOKEN}` })
      assert.equal(reply.status, 200, `${path}: ${reply.text}`)
    }
  })

  it('an unknown token is 401 on every route, the change log too', async () => {
    const reply = await admin.call('GET', '/admin/changes', undefined, { authorization: 'Bearer not-a-token-of-this-node' })
    assertError(reply, 401, 'unauthorized')
  })
})

describe('the change log: every mutation once, by token name, no secrets', () => {
  let admin: AdminHarness
  /** request id → what its changes must say, in the order made */
  const expected = new Map<string, Array<{ action: string; resource_type: string; resource_id: string }>>()
  const rawKeys: string[] = []

  const mutate = async (method: string, path: string, body: unknown, action: string, type: string, id?: (r: Reply) => string,
    alsoFirst: Array<{ action: string; resource_type: string; resource_id: string }> = []): Promise<Reply> => {
    const reply = await admin.call(method, path, body)
    assert.ok(reply.status < 300, `${method} ${path}: ${reply.status} ${reply.text}`)
    const requestId = String(reply.headers['x-relaykey-request-id'])
    expected.set(requestId, [...alsoFirst, { action, resource_type: type, resource_id: id === undefined ? reply.json.id : id(reply) }])
    return reply
  }
  let total = 0

  before(async () => {
    admin = await startAdmin()
    const partner = (await mutate('POST', '/admin/partners', partnerBody('acme'), 'create', 'partner')).json
    await mutate('PATCH', '/admin/partners/acme', { timeouts: { connect_ms: 1500, request_ms: 20000 } }, 'update', 'partner', () => partner.id)
    const credential = (await mutate('POST', '/admin/partners/acme/credentials', { name: 'main', environment: 'production', secret: { provider: 'inline', value: INLINE_SECRET } }, 'create', 'credential')).json
    await mutate('PATCH', `/admin/credentials/${credential.id}`, { secret: { provider: 'inline', value: ROTATED_SECRET } }, 'update', 'credential', () => credential.id)
    const spare = (await mutate('POST', '/admin/partners/acme/credentials', { name: 'spare', environment: 'sandbox', secret: { provider: 'env', ref: 'ACME_SPARE' } }, 'create', 'credential')).json
    await mutate('DELETE', `/admin/credentials/${spare.id}`, undefined, 'delete', 'credential', () => spare.id)
    const policy = (await mutate('POST', '/admin/policies', { name: 'standard', rate_limit: { requests: 10, per_seconds: 1 } }, 'create', 'policy')).json
    await mutate('PATCH', `/admin/policies/${policy.id}`, { rate_limit: { requests: 20, per_seconds: 1 } }, 'update', 'policy', () => policy.id)
    const binding = (await mutate('POST', '/admin/bindings', { policy: policy.id, partner: 'acme' }, 'create', 'binding')).json
    const key = (await mutate('POST', '/admin/keys', { name: 'svc', policy: policy.id, environment: 'production' }, 'create', 'key')).json
    rawKeys.push(key.key)
    await mutate('PATCH', `/admin/keys/${key.id}`, { team: 'payments' }, 'update', 'key', () => key.id)
    rawKeys.push((await mutate('POST', `/admin/keys/${key.id}/rotate`, { grace_seconds: 60 }, 'rotate', 'key', () => key.id)).json.key)
    await mutate('POST', `/admin/keys/${key.id}/revoke`, undefined, 'revoke', 'key', () => key.id)
    await mutate('DELETE', `/admin/bindings/${binding.id}`, undefined, 'delete', 'binding', () => binding.id)
    const other = (await mutate('POST', '/admin/policies', { name: 'spare-policy' }, 'create', 'policy')).json
    const otherBinding = (await mutate('POST', '/admin/bindings', { policy: other.id, partner: 'acme' }, 'create', 'binding')).json
    // a delete that takes other rows with it: each is its own change, under the same request id
    await mutate('DELETE', `/admin/policies/${other.id}`, undefined, 'delete', 'policy', () => other.id,
      [{ action: 'delete', resource_type: 'binding', resource_id: otherBinding.id }])
    await mutate('DELETE', '/admin/partners/acme', undefined, 'delete', 'partner', () => partner.id,
      [{ action: 'delete', resource_type: 'credential', resource_id: credential.id }])
    // change nothing: not a change
    await admin.call('PATCH', `/admin/policies/${policy.id}`, { rate_limit: { requests: 20, per_seconds: 1 } })
    await admin.call('POST', `/admin/keys/${key.id}/revoke`)
    total = [...expected.values()].reduce((n, list) => n + list.length, 0)
  })
  after(async () => { await admin.close() })

  it('holds each mutation exactly once, with the token name, the action, the resource and the request id', async () => {
    const { changes, next_before: next } = (await admin.call('GET', '/admin/changes?limit=1000')).json
    assert.equal(next, null)
    assert.equal(changes.length, total, JSON.stringify(changes.map((c: any) => [c.action, c.resource_type])))
    const byRequest = new Map<string, unknown[]>()
    for (const change of [...changes].reverse()) {
      assert.equal(change.token_name, 'admin')
      byRequest.set(change.request_id, [...(byRequest.get(change.request_id) ?? []), { action: change.action, resource_type: change.resource_type, resource_id: change.resource_id }])
    }
    assert.deepEqual(byRequest, expected)
    assert.deepEqual(changes.map((c: any) => c.seq), changes.map((_: unknown, i: number) => changes.length - i), 'newest first, seq 1…n')
  })

  it('says what changed field by field; secrets only as references, never a value or a raw key', async () => {
    const { changes } = (await admin.call('GET', '/admin/changes?resource_type=credential&action=update')).json
    assert.equal(changes.length, 1)
    const secret = changes[0].changes.secret
    assert.equal(secret.from.provider, 'inline')
    assert.match(secret.from.sealed, /^[0-9a-f]{16}$/)
    assert.notEqual(secret.from.sealed, secret.to.sealed)
    assert.deepEqual(Object.keys(changes[0].changes), ['secret'])
    const policyUpdate = (await admin.call('GET', '/admin/changes?resource_type=policy&action=update')).json.changes[0]
    assert.deepEqual(policyUpdate.changes, { rate_limit: { from: { requests: 10, per_seconds: 1, burst: 10 }, to: { requests: 20, per_seconds: 1, burst: 20 } } })
    const everything = JSON.stringify((await admin.call('GET', '/admin/changes?limit=1000')).json)
    for (const leak of [INLINE_SECRET, ROTATED_SECRET, ...rawKeys]) assert.ok(!everything.includes(leak), 'the change log holds a secret or raw key')
  })

  it('hashes and diffs a member named __proto__ like any other', () => {
    const a = JSON.parse('{"extra":{"__proto__":{"a":1}}}') as object
    const b = JSON.parse('{"extra":{"__proto__":{"a":2}}}') as object
    assert.notEqual(canonicalJson(a), canonicalJson(b))
    assert.deepEqual(Object.keys(fieldChanges(a, b)), ['extra'])
  })

  it('filters by resource, token and action, and pages with next_before', async () => {
    const keyChanges = (await admin.call('GET', '/admin/changes?resource_type=key')).json.changes
    assert.deepEqual(keyChanges.map((c: any) => c.action), ['revoke', 'rotate', 'update', 'create'])
    assert.equal((await admin.call('GET', '/admin/changes?token=auditor')).json.changes.length, 0)
    const seen: number[] = []
    let before: number | null = null
    do {
      const page: any = (await admin.call('GET', `/admin/changes?limit=4${before === null ? '' : `&before=${before}`}`)).json
      seen.push(...page.changes.map((c: any) => c.seq))
      before = page.next_before
    } while (before !== null)
    assert.deepEqual(seen, [...Array(total).keys()].map((i) => total - i))
    assertError(await admin.call('GET', '/admin/changes?action=explode'), 400, 'invalid_request')
  })
})
