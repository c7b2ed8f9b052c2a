// A virtual key calls a partner end to end through a 2-worker RelayKey in embedded mode.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startRelayKey, setUpGovernedPartner, type RelayKeyProcess, type GovernedSetup } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { rawRequest } from '../helpers/raw-http.js'

describe('governed request, embedded mode', () => {
  let rk: RelayKeyProcess
  let partner: MockPartner
  let setup: GovernedSetup

  before(async () => {
    partner = await startMockPartner()
    rk = await startRelayKey()
    setup = await setUpGovernedPartner(rk, { baseUrl: `${partner.url}/v1` })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    await partner.close()
  })

  it('forwards with the credential injected, under the base path, query kept', async () => {
    partner.received.length = 0
    const res = await request(`${rk.proxyUrl}/proxy/acme/resources/applicants/42?expand=docs&x=1`, {
      headers: { 'x-relaykey': setup.key, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    })
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['x-relaykey-request-id']), /^[0-9a-f-]{36}$/)
    assert.deepEqual(await res.body.json(), { ok: true, method: 'GET', url: '/v1/resources/applicants/42?expand=docs&x=1' })
    const seen = partner.received[0]!
    assert.equal(seen.headers['x-app-token'], 'upstream-secret-value')
    assert.equal(seen.headers['x-relaykey'], undefined)
    assert.equal(seen.headers.host, `127.0.0.1:${partner.port}`)
    assert.equal(seen.headers.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
  })

  it('streams a request body and the response back', async () => {
    partner.handle((_req, res, body) => {
      res.writeHead(201, { 'content-type': 'application/octet-stream' })
      res.end(Buffer.concat([Buffer.from('got:'), body]))
    })
    const res = await request(`${rk.proxyUrl}/proxy/acme/resources/applicants`, {
      method: 'POST', headers: { 'x-relaykey': setup.key, 'content-type': 'application/json' }, body: '{"name":"Ada"}',
    })
    assert.equal(res.statusCode, 201)
    assert.equal(await res.body.text(), 'got:{"name":"Ada"}')
    assert.equal(partner.received.at(-1)!.headers['content-type'], 'application/json')
  })

  it('strips client credentials, hop-by-hop and forwarding headers, including Connection-named ones', async () => {
    partner.received.length = 0
    partner.handle((_req, res) => {
      res.writeHead(200, [
        'Content-Type', 'text/plain', 'Connection', 'X-Vendor-Internal', 'X-Vendor-Internal', 'hidden',
        'Keep-Alive', 'timeout=1', 'Proxy-Authenticate', 'Basic', 'X-Kept', 'yes',
      ])
      res.end('ok')
    })
    // raw bytes: HTTP clients refuse to send a Connection header naming other headers
    const res = await rawRequest(Number(new URL(rk.proxyUrl).port), [
      'GET /proxy/acme/things HTTP/1.1', 'Host: relaykey.local', `X-RelayKey: ${setup.key}`,
      'X-App-Token: client-tries-its-own-credential', 'Connection: close, X-App-Token, X-Drop-Me', 'X-Drop-Me: 1',
      'X-Forwarded-For: 10.0.0.1', 'Forwarded: for=10.0.0.1', 'Proxy-Authorization: Basic eA==', 'TE: trailers',
      'X-Kept-Request: yes', '', '',
    ].join('\r\n'))
    assert.equal(res.status, 200)
    assert.equal(res.body, 'ok')
    assert.equal(res.headers['x-vendor-internal'], undefined)
    assert.equal(res.headers['proxy-authenticate'], undefined)
    assert.equal(res.headers['x-kept'], 'yes')
    const seen = partner.received[0]!
    assert.equal(seen.headers['x-app-token'], 'upstream-secret-value')
    assert.equal(seen.rawHeaders.filter((h) => h.toLowerCase() === 'x-app-token').length, 1)
    for (const gone of ['x-drop-me', 'x-forwarded-for', 'forwarded', 'proxy-authorization', 'te', 'x-relaykey']) {
      assert.equal(seen.headers[gone], undefined, gone)
    }
    assert.equal(seen.headers['x-kept-request'], 'yes')
  })

  it('passes redirects back instead of following them', async () => {
    partner.received.length = 0
    partner.handle((_req, res) => {
      res.writeHead(302, { location: 'https://elsewhere.example/next' })
      res.end()
    })
    const res = await request(`${rk.proxyUrl}/proxy/acme/moved`, { headers: { 'x-relaykey': setup.key } })
    assert.equal(res.statusCode, 302)
    assert.equal(res.headers.location, 'https://elsewhere.example/next')
    await res.body.dump()
    assert.equal(partner.received.length, 1)
  })

  it('passes upstream error statuses through untouched', async () => {
    partner.handle((_req, res) => {
      res.writeHead(422, { 'content-type': 'application/json' })
      res.end('{"vendor":"says no"}')
    })
    const res = await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': setup.key } })
    assert.equal(res.statusCode, 422)
    assert.equal(await res.body.text(), '{"vendor":"says no"}')
  })

  it('answers /health and /ready, and nothing else on the proxy port', async () => {
    const health = await request(`${rk.proxyUrl}/health`)
    assert.equal(health.statusCode, 200)
    assert.deepEqual(await health.body.json(), { status: 'ok' })
    const ready = await request(`${rk.proxyUrl}/ready`)
    assert.equal(ready.statusCode, 200)
    await ready.body.dump()
    for (const path of ['/admin/partners', '/admin/health', '/metrics', '/', '/proxy/acme']) {
      const res = await request(rk.proxyUrl + path, { headers: { authorization: `Bearer ${rk.adminToken}` } })
      assert.equal(res.statusCode, 404, path)
      const body = await res.body.json() as { error: { code: string; request_id: string } }
      assert.equal(body.error.code, 'not_found')
      assert.equal(body.error.request_id, res.headers['x-relaykey-request-id'])
    }
  })
})

describe('a credential secret the partner auth cannot carry', () => {
  let rk: RelayKeyProcess
  let partner: MockPartner

  before(async () => {
    partner = await startMockPartner()
    // env secrets are not checked when stored (the variable is read when keys load)
    rk = await startRelayKey({ workers: 1, env: { BROKEN_VENDOR_TOKEN: 'tok\r\nX-Injected: 1' } })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    await partner.close()
  })

  it('is left out of rotation with an error log, and the other credential serves every request', async () => {
    const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url, secret: { provider: 'env', ref: 'BROKEN_VENDOR_TOKEN' } })
    const good = await rk.admin('POST', '/admin/partners/acme/credentials', {
      name: 'good', environment: 'production', secret: { provider: 'inline', value: 'good-token' },
    })
    assert.equal(good.status, 201)
    partner.received.length = 0
    for (let i = 0; i < 8; i++) {
      const res = await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': setup.key } })
      assert.equal(res.statusCode, 200, await res.body.text())
    }
    assert.deepEqual(new Set(partner.received.map((r) => r.headers['x-app-token'])), new Set(['good-token']))
    assert.equal(partner.received.some((r) => r.headers['x-injected'] !== undefined), false)
    assert.match(rk.output(), /"err":"credential secret has characters an HTTP header cannot carry".*"msg":"credential unusable; left out of rotation"/)
    assert.doesNotMatch(rk.output(), /tok\\r\\nX-Injected/)
  })
})
