// The admin port's envelope: bearer auth on every call, JSON errors with request ids, 404/405,
// body limits, malformed JSON, internal errors that do not leak, health and metrics.
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { assertError, assertInvalid, startAdmin, TOKEN, type AdminHarness } from './admin-harness.js'

describe('admin auth', () => {
  let admin: AdminHarness
  before(async () => { admin = await startAdmin() })
  after(async () => { await admin.close() })

  it('refuses a request without a token with 401 unauthorized and WWW-Authenticate', async () => {
    const reply = await admin.call('GET', '/admin/partners', undefined, { authorization: null })
    assertError(reply, 401, 'unauthorized')
    assert.match(String(reply.headers['www-authenticate']), /^Bearer/)
  })

  it('refuses a wrong token, a token of another length, another scheme and an empty bearer', async () => {
    for (const authorization of [
      `Bearer ${TOKEN.slice(0, -1)}x`, `Bearer ${TOKEN}x`, 'Bearer short', `Basic ${TOKEN}`, 'Bearer ', TOKEN, `Bearer${TOKEN}`,
    ]) {
      const reply = await admin.call('GET', '/admin/health', undefined, { authorization })
      assertError(reply, 401, 'unauthorized')
    }
  })

  it('accepts the token with any case of the scheme', async () => {
    const reply = await admin.call('GET', '/admin/health', undefined, { authorization: `bearer ${TOKEN}` })
    assert.equal(reply.status, 200)
  })

  it('protects health, metrics and unknown paths too, before revealing whether a route exists', async () => {
    for (const path of ['/admin/health', '/metrics', '/admin/nope', '/', '/admin/keys/x/revoke']) {
      assertError(await admin.call('GET', path, undefined, { authorization: null }), 401, 'unauthorized')
    }
  })

  it('does not read the body of an unauthenticated request', async () => {
    const reply = await admin.call('POST', '/admin/partners', undefined, { authorization: null, raw: '{not json' })
    assertError(reply, 401, 'unauthorized')
  })
})

describe('admin envelope', () => {
  let admin: AdminHarness
  before(async () => { admin = await startAdmin() })
  after(async () => { await admin.close() })

  it('answers GET /admin/health with {"status":"ok"}', async () => {
    const reply = await admin.call('GET', '/admin/health')
    assert.equal(reply.status, 200)
    assert.deepEqual(reply.json, { status: 'ok' })
    assert.match(String(reply.headers['content-type']), /^application\/json/)
  })

  it('sends a fresh X-RelayKey-Request-Id and Cache-Control: no-store on every response', async () => {
    const a = await admin.call('GET', '/admin/health')
    const b = await admin.call('GET', '/admin/health')
    assert.match(String(a.headers['x-relaykey-request-id']), /^[0-9a-f-]{36}$/)
    assert.notEqual(a.headers['x-relaykey-request-id'], b.headers['x-relaykey-request-id'])
    assert.equal(a.headers['cache-control'], 'no-store')
  })

  it('answers an unknown route with 404 not_found', async () => {
    assertError(await admin.call('GET', '/admin/nothing-here'), 404, 'not_found')
    assertError(await admin.call('GET', '/proxy/x/y'), 404, 'not_found')
    assertError(await admin.call('POST', '/admin/keys/k/explode'), 404, 'not_found')
  })

  it('answers a known path with the wrong method with 405 and Allow', async () => {
    const cases: Array<[string, string, string]> = [
      ['PUT', '/admin/partners', 'GET, POST'],
      ['POST', '/admin/partners/acme', 'DELETE, GET, PATCH'],
      ['GET', '/admin/credentials/cred_1', 'DELETE, PATCH'],
      ['PUT', '/admin/partners/acme/credentials', 'GET, POST'],
      ['GET', '/admin/bindings/bnd_1', 'DELETE'],
      ['DELETE', '/admin/keys/key_1', 'GET, PATCH'],
      ['GET', '/admin/keys/key_1/revoke', 'POST'],
      ['GET', '/admin/keys/key_1/rotate', 'POST'],
      ['POST', '/admin/health', 'GET'],
      ['DELETE', '/admin/policies', 'GET, POST'],
    ]
    for (const [method, path, allow] of cases) {
      const reply = await admin.call(method, path)
      assertError(reply, 405, 'method_not_allowed')
      assert.equal(reply.headers.allow, allow, `${method} ${path}`)
    }
  })

  it('answers malformed JSON with 400 invalid_request without quoting the body', async () => {
    const reply = await admin.call('POST', '/admin/partners', undefined, { raw: '{"slug": "acme", "secret": "hunter2-plaintext"' })
    assertInvalid(reply, 'body')
    assert.ok(!reply.text.includes('hunter2'))
  })

  it('refuses deeply nested JSON in any field with 400 naming the field, never 500', async () => {
    const objects = (n: number): string => '{"a":'.repeat(n) + '1' + '}'.repeat(n)
    const arrays = (n: number): string => '['.repeat(n) + ']'.repeat(n)
    const payment = (extra: string): string => `{"name":"deep","payment":{"amount":"10","asset":"0x${'a'.repeat(40)}","network":"eip155:84532",` +
      `"pay_to":"0x${'b'.repeat(40)}","facilitator_url":"https://facilitator.example","extra":${extra}}}`
    for (const [path, raw, field] of [
      ['/admin/policies', payment(objects(10_000)), 'payment.extra'],
      ['/admin/policies', payment(arrays(100_000)), 'payment.extra'],
      ['/admin/policies', `{"name":"deep","allow":${arrays(50_000)}}`, 'allow[0]'],
      ['/admin/partners', arrays(200_000), 'body[0][0]'],
    ] as const) {
      const reply = await admin.call('POST', path, undefined, { raw })
      assertInvalid(reply, field)
      assert.match(reply.json.error.message, /nested more than 32 levels deep/)
    }
    // as deep as anything RelayKey takes is fine
    const reply = await admin.call('POST', '/admin/policies', undefined, { raw: payment(objects(20)) })
    assert.equal(reply.status, 201, reply.text)
  })

  it('refuses a body that is not a JSON object, and a missing body, naming body', async () => {
    assertInvalid(await admin.call('POST', '/admin/partners', [1, 2]), 'body')
    assertInvalid(await admin.call('POST', '/admin/policies', 'name'), 'body')
    assertInvalid(await admin.call('POST', '/admin/policies', null), 'body')
    assertInvalid(await admin.call('POST', '/admin/policies'), 'body')
  })

  it('refuses a body over 1 MiB with 413 payload_too_large (declared length)', async () => {
    const big = JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10) })
    const reply = await admin.call('POST', '/admin/policies', undefined, { raw: big })
    assertError(reply, 413, 'payload_too_large')
  })

  it('refuses a chunked body that grows over 1 MiB with 413', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    async function * body (): AsyncGenerator<Buffer> {
      for (let i = 0; i < 20; i++) yield chunk
    }
    let status = 0
    let code = ''
    try {
      const res = await request(`${admin.url}/admin/policies`, {
        method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: Readable.from(body()),
      })
      status = res.statusCode
      code = ((await res.body.json()) as { error: { code: string } }).error.code
    } catch (err) {
      // The server may close the connection while the client still writes; what it did answer is what counts.
      assert.fail(`request failed: ${(err as Error).message}`)
    }
    assert.equal(status, 413)
    assert.equal(code, 'payload_too_large')
  })

  it('accepts a body just under the limit', async () => {
    const reply = await admin.call('POST', '/admin/policies', undefined, { raw: JSON.stringify({ name: 'big' }) + ' '.repeat(1024 * 1024 - 20) })
    assert.equal(reply.status, 201, reply.text)
  })

  it('refuses malformed percent-encoding in a path parameter with 400', async () => {
    assertInvalid(await admin.call('GET', '/admin/partners/%E0%A4%A'), 'slug')
  })

  it('decodes percent-encoded path parameters', async () => {
    await admin.call('POST', '/admin/policies', { name: 'with space' })
    const reply = await admin.call('GET', '/admin/policies/with%20space')
    assert.equal(reply.status, 200)
    assert.equal(reply.json.name, 'with space')
  })

  it('refuses unknown and repeated query parameters on lists', async () => {
    assertInvalid(await admin.call('GET', '/admin/partners?limit=5'), 'limit')
    assertInvalid(await admin.call('GET', '/admin/keys?custmer=acme'), 'custmer')
    assertInvalid(await admin.call('GET', '/admin/keys?customer=a&customer=b'), 'customer')
  })

  it('answers /metrics with 404 when no metrics source is configured', async () => {
    assertError(await admin.call('GET', '/metrics'), 404, 'not_found')
  })

  it('logs method, path and status of each request, never the bearer token or a body', async () => {
    await admin.call('POST', '/admin/policies', { name: 'logged-body-marker' })
    const lines = admin.logs.join('\n')
    assert.ok(lines.includes('"path":"/admin/policies"'))
    assert.ok(!lines.includes(TOKEN))
    assert.ok(!lines.includes('logged-body-marker'))
  })
})

describe('admin metrics', () => {
  let admin: AdminHarness
  before(async () => { admin = await startAdmin({ metrics: async () => '# HELP relaykey_up 1\nrelaykey_up 1\n' }) })
  after(async () => { await admin.close() })

  it('serves the metrics text with the token', async () => {
    const reply = await admin.call('GET', '/metrics')
    assert.equal(reply.status, 200)
    assert.match(String(reply.headers['content-type']), /^text\/plain; version=0\.0\.4/)
    assert.equal(reply.text, '# HELP relaykey_up 1\nrelaykey_up 1\n')
  })

  it('refuses /metrics without the token', async () => {
    assertError(await admin.call('GET', '/metrics', undefined, { authorization: null }), 401, 'unauthorized')
  })

  it('answers 405 for POST /metrics', async () => {
    const reply = await admin.call('POST', '/metrics')
    assertError(reply, 405, 'method_not_allowed')
    assert.equal(reply.headers.allow, 'GET')
  })
})

describe('admin internal errors', () => {
  let admin: AdminHarness
  const secretInError = 'sk_live_do_not_log_me'
  before(async () => {
    admin = await startAdmin({
      storeOverrides: {
        async listPolicies () {
          throw Object.assign(new Error('database exploded'), { parameters: [secretInError] })
        },
      },
    })
  })
  after(async () => { await admin.close() })

  it('answers 500 internal_error, logs the failure with the request id and no driver parameters', async () => {
    const reply = await admin.call('GET', '/admin/policies')
    assertError(reply, 500, 'internal_error')
    assert.ok(!reply.text.includes('database exploded'))
    const requestId = String(reply.headers['x-relaykey-request-id'])
    const line = admin.logs.find((l) => l.includes('admin request failed'))
    assert.ok(line !== undefined)
    assert.ok(line.includes(requestId))
    assert.ok(line.includes('database exploded'))
    assert.ok(!admin.logs.join('\n').includes(secretInError))
  })
})

describe('admin when the control store cannot be reached', () => {
  let admin: AdminHarness
  const unreachable = (code: string) => async (): Promise<never> => {
    throw Object.assign(new Error(`connect ${code} 10.1.2.3:5432`), { code })
  }
  before(async () => {
    admin = await startAdmin({ storeOverrides: { listPolicies: unreachable('ECONNREFUSED'), createPolicy: unreachable('CONNECTION_CLOSED') } })
  })
  after(async () => { await admin.close() })

  it('answers 503 governance_unavailable naming the error code, never the address', async () => {
    const reply = await admin.call('GET', '/admin/policies')
    assertError(reply, 503, 'governance_unavailable')
    const message = (reply.json as { error: { message: string } }).error.message
    assert.equal(message, 'the control store is unavailable (ECONNREFUSED)')
    assert.ok(!reply.text.includes('10.1.2.3'))
    assert.equal(reply.headers['retry-after'], '1')
  })

  it('tells a writer that the change may still have been applied', async () => {
    const reply = await admin.call('POST', '/admin/policies', { name: 'p' })
    assertError(reply, 503, 'governance_unavailable')
    assert.match((reply.json as { error: { message: string } }).error.message, /^the control store is unavailable \(CONNECTION_CLOSED\); the change may still have been applied/)
    assert.equal(reply.headers['retry-after'], undefined, 'a write is read back, not retried blindly')
  })
})
