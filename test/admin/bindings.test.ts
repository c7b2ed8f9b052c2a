// /admin/bindings: policy × partner, optionally pinned to some of the partner's credentials.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { assertConflict, assertError, assertInvalid, partnerBody, startAdmin, type AdminHarness } from './admin-harness.js'

describe('bindings', () => {
  let admin: AdminHarness
  let policyId = ''
  let acmeId = ''
  let acmeCred = ''
  let otherCred = ''
  before(async () => {
    admin = await startAdmin()
    policyId = (await admin.call('POST', '/admin/policies', { name: 'gold' })).json.id
    acmeId = (await admin.call('POST', '/admin/partners', partnerBody('acme'))).json.id
    await admin.call('POST', '/admin/partners', partnerBody('other'))
    acmeCred = (await admin.call('POST', '/admin/partners/acme/credentials', {
      name: 'a', environment: 'production', secret: { provider: 'env', ref: 'A' },
    })).json.id
    otherCred = (await admin.call('POST', '/admin/partners/other/credentials', {
      name: 'o', environment: 'production', secret: { provider: 'env', ref: 'O' },
    })).json.id
  })
  after(async () => { await admin.close() })

  it('binds a policy (by id) to a partner (by slug) and publishes the policy', async () => {
    const reply = await admin.call('POST', '/admin/bindings', { policy: policyId, partner: 'acme' })
    assert.equal(reply.status, 201, reply.text)
    assert.equal(reply.json.policy_id, policyId)
    assert.equal(reply.json.partner_id, acmeId)
    assert.equal(reply.json.partner, 'acme')
    assert.equal(reply.json.credentials, null)
    assert.equal(typeof reply.json.id, 'string')
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'policy', id: policyId })
  })

  it('refuses binding the same policy to the same partner twice with 409 naming partner', async () => {
    assertConflict(await admin.call('POST', '/admin/bindings', { policy: 'gold', partner: 'acme' }), 'partner')
  })

  it('binds by policy name with credentials of that partner', async () => {
    const reply = await admin.call('POST', '/admin/bindings', { policy: 'gold', partner: 'other', credentials: [otherCred] })
    assert.equal(reply.status, 201, reply.text)
    assert.deepEqual(reply.json.credentials, [otherCred])
    assert.equal(reply.json.partner, 'other')
  })

  it('refuses bad references and bodies naming the field', async () => {
    const silver = (await admin.call('POST', '/admin/policies', { name: 'silver' })).json.id
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ partner: 'acme' }, 'policy'],
      [{ policy: 'nope', partner: 'acme' }, 'policy'],
      [{ policy: silver }, 'partner'],
      [{ policy: silver, partner: 'nobody' }, 'partner'],
      [{ policy: silver, partner: 7 }, 'partner'],
      [{ policy: silver, partner: 'acme', credentials: [otherCred] }, 'credentials[0]'],
      [{ policy: silver, partner: 'acme', credentials: [acmeCred, 'cred_unknown'] }, 'credentials[1]'],
      [{ policy: silver, partner: 'acme', credentials: [acmeCred, acmeCred] }, 'credentials[1]'],
      [{ policy: silver, partner: 'acme', credentials: [] }, 'credentials'],
      [{ policy: silver, partner: 'acme', credentials: acmeCred }, 'credentials'],
      [{ policy: silver, partner: 'acme', credentials: [5] }, 'credentials[0]'],
      [{ policy: silver, partner: 'acme', environment: 'production' }, 'environment'],
    ]
    for (const [body, field] of cases) assertInvalid(await admin.call('POST', '/admin/bindings', body), field)
  })

  it('lists bindings with the partner slug', async () => {
    const reply = await admin.call('GET', '/admin/bindings')
    assert.equal(reply.status, 200)
    assert.deepEqual(reply.json.map((b: { partner: string }) => b.partner).sort(), ['acme', 'other'])
  })

  it('deletes a binding with 204, publishes its policy, then 404s', async () => {
    const list = (await admin.call('GET', '/admin/bindings')).json
    const binding = list.find((b: { partner: string }) => b.partner === 'other')
    const reply = await admin.call('DELETE', `/admin/bindings/${binding.id}`)
    assert.equal(reply.status, 204)
    assert.deepEqual(admin.publisher.published.at(-1), { kind: 'policy', id: policyId })
    assertError(await admin.call('DELETE', `/admin/bindings/${binding.id}`), 404, 'not_found')
    assert.equal((await admin.call('GET', '/admin/bindings')).json.length, 1)
  })

  it("removes a partner's bindings with the partner", async () => {
    await admin.call('DELETE', '/admin/partners/acme')
    assert.deepEqual((await admin.call('GET', '/admin/bindings')).json, [])
  })
})
