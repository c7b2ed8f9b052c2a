// Every refusal the data plane can give in this build, as the client sees it: status, JSON
// error code, request id, and no upstream contact.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startRelayKey, setUpGovernedPartner, type RelayKeyProcess, type GovernedSetup } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { freePort } from '../helpers/ports.js'
import { rawRequest } from '../helpers/raw-http.js'
import { VirtualKeyCodec } from '../../src/keys/virtual-key.js'

async function refused (url: string, headers: Record<string, string>, status: number, code: string, method = 'GET'): Promise<{ error: { code: string; message: string; request_id: string } }> {
  const res = await request(url, { method: method as 'GET', headers })
  const body = await res.body.json() as { error: { code: string; message: string; request_id: string } }
  assert.equal(res.statusCode, status, JSON.stringify(body))
  assert.equal(body.error.code, code)
  assert.equal(typeof body.error.message, 'string')
  assert.equal(body.error.request_id, res.headers['x-relaykey-request-id'])
  assert.equal(res.headers['content-type'], 'application/json')
  return body
}

describe('refusals', () => {
  let rk: RelayKeyProcess
  let partner: MockPartner
  let setup: GovernedSetup
  let blackHole: Server

  before(async () => {
    partner = await startMockPartner()
    // accepts connections and requests but never answers
    blackHole = createServer(() => {})
    blackHole.listen(0, '127.0.0.1')
    await once(blackHole, 'listening')
    rk = await startRelayKey()
    setup = await setUpGovernedPartner(rk, {
      baseUrl: `${partner.url}/v1`,
      allow: [{ method: 'GET', path: '/resources/applicants/*' }, { method: '*', path: '/open/**' }],
    })
  })
  after(async () => {
    await rk.stop()
    await partner.close()
    blackHole.closeAllConnections()
    blackHole.close()
  })

  const url = (path: string): string => `${rk.proxyUrl}/proxy/${path}`

  it('401 missing_key without X-RelayKey', async () => {
    await refused(url('acme/resources/applicants/1'), {}, 401, 'missing_key')
  })

  it('401 invalid_key for malformed keys, bad checksums and unknown keys', async () => {
    await refused(url('acme/resources/applicants/1'), { 'x-relaykey': 'not-a-key' }, 401, 'invalid_key')
    const typo = setup.key.slice(0, -1) + (setup.key.endsWith('a') ? 'b' : 'a')
    await refused(url('acme/resources/applicants/1'), { 'x-relaykey': typo }, 401, 'invalid_key')
    // a well-formed key with a valid checksum that was never issued
    const pepper = Buffer.from(readFileSync(join(rk.dataDir, 'hmac-secret'), 'utf8').trim(), 'utf8')
    const stranger = new VirtualKeyCodec(pepper).issue().key
    await refused(url('acme/resources/applicants/1'), { 'x-relaykey': stranger }, 401, 'invalid_key')
  })

  it('404 unknown_partner and 403 partner_not_allowed', async () => {
    await refused(url('nobody/x'), { 'x-relaykey': setup.key }, 404, 'unknown_partner')
    const other = await rk.admin('POST', '/admin/partners', { slug: 'other', base_urls: { production: partner.url }, auth: { type: 'bearer' } })
    assert.equal(other.status, 201)
    const notBound = await refused(url('other/x'), { 'x-relaykey': setup.key }, 403, 'partner_not_allowed')
    assert.equal(notBound.error.message, 'this key\'s policy has no binding to partner other')
  })

  it('403 endpoint_not_allowed outside the allow list (also when percent-encoded)', async () => {
    await refused(url('acme/resources/applicants'), { 'x-relaykey': setup.key }, 403, 'endpoint_not_allowed')
    await refused(url('acme/resources/applicants/1'), { 'x-relaykey': setup.key }, 403, 'endpoint_not_allowed', 'DELETE')
    await refused(url('acme/resources/other/1'), { 'x-relaykey': setup.key }, 403, 'endpoint_not_allowed')
    const open = await request(url('acme/open/a/b'), { method: 'POST', headers: { 'x-relaykey': setup.key } })
    assert.equal(open.statusCode, 200)
    await open.body.dump()
    const encoded = await request(url('acme/resources/%61pplicants/1'), { headers: { 'x-relaykey': setup.key } })
    assert.equal(encoded.statusCode, 200) // decoded for matching: same endpoint, same rule
    await encoded.body.dump()
  })

  it('403 environment_not_allowed without a base URL for the key\'s environment; 502 partner_misconfigured with one but no credential', async () => {
    const key = await rk.admin('POST', '/admin/keys', { name: 'sandbox key', policy: setup.policyId, environment: 'sandbox' })
    assert.equal(key.status, 201)
    await refused(url('acme/resources/applicants/1'), { 'x-relaykey': key.body.key }, 403, 'environment_not_allowed')
    // a base URL for sandbox but still no sandbox credential
    assert.equal((await rk.admin('PATCH', '/admin/partners/acme', { base_urls: { production: `${partner.url}/v1`, sandbox: `${partner.url}/sb` } })).status, 200)
    await sleep(300)
    const body = await refused(url('acme/resources/applicants/1'), { 'x-relaykey': key.body.key }, 502, 'partner_misconfigured')
    assert.match(JSON.stringify(body), /partner acme cannot be called in environment sandbox: it has no credential for environment sandbox/)
  })

  it('401 key_revoked and key_expired', async () => {
    const revoked = await rk.admin('POST', '/admin/keys', { name: 'to revoke', policy: setup.policyId, environment: 'production' })
    assert.equal((await rk.admin('POST', `/admin/keys/${revoked.body.id}/revoke`)).status, 200)
    const refusal = await refused(url('acme/resources/applicants/1'), { 'x-relaykey': revoked.body.key }, 401, 'key_revoked')
    assert.equal(refusal.error.message, 'this virtual key has been revoked')
    const expiring = await rk.admin('POST', '/admin/keys', {
      name: 'short lived', policy: setup.policyId, environment: 'production', expires_at: new Date(Date.now() + 1500).toISOString(),
    })
    assert.equal(expiring.status, 201)
    const ok = await request(url('acme/resources/applicants/1'), { headers: { 'x-relaykey': expiring.body.key } })
    assert.equal(ok.statusCode, 200)
    await ok.body.dump()
    await sleep(1600)
    const expired = await refused(url('acme/resources/applicants/1'), { 'x-relaykey': expiring.body.key }, 401, 'key_expired')
    assert.equal(expired.error.message, 'this virtual key has expired')
  })

  it('400 invalid_path before any upstream contact', async () => {
    partner.received.length = 0
    const res = await rawRequest(Number(new URL(rk.proxyUrl).port), `GET /proxy/acme/resources/applicants/%2e%2e/%2e%2e/admin HTTP/1.1\r\nHost: x\r\nX-RelayKey: ${setup.key}\r\n\r\n`)
    assert.equal(res.status, 400)
    assert.equal(JSON.parse(res.body).error.code, 'invalid_path')
    assert.equal(partner.received.length, 0)
  })

  it('400 bad_request for a duplicate Host, an absolute-form target and CONNECT', async () => {
    const port = Number(new URL(rk.proxyUrl).port)
    const dup = await rawRequest(port, `GET /proxy/acme/resources/applicants/1 HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-RelayKey: ${setup.key}\r\n\r\n`)
    assert.equal(dup.status, 400)
    assert.equal(JSON.parse(dup.body).error.code, 'bad_request')
    const absolute = await rawRequest(port, `GET http://evil.example/proxy/acme/resources/applicants/1 HTTP/1.1\r\nHost: evil.example\r\nX-RelayKey: ${setup.key}\r\n\r\n`)
    assert.equal(absolute.status, 400)
    assert.equal(JSON.parse(absolute.body).error.code, 'bad_request')
    const connectReq = await rawRequest(port, 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n')
    assert.equal(connectReq.status, 400)
    assert.equal(JSON.parse(connectReq.body).error.code, 'bad_request')
    assert.equal(partner.received.filter((r) => r.url.includes('evil')).length, 0)
    assert.match(connectReq.headers['x-relaykey-request-id'] ?? '', /^[0-9a-f-]{36}$/)
  })

  it('400 bad_request as JSON, with a request id, for an HTTP/1.1 request without Host', async () => {
    const port = Number(new URL(rk.proxyUrl).port)
    const res = await rawRequest(port, `GET /proxy/acme/resources/applicants/1 HTTP/1.1\r\nX-RelayKey: ${setup.key}\r\n\r\n`)
    assert.equal(res.status, 400)
    const body = JSON.parse(res.body)
    assert.equal(body.error.code, 'bad_request')
    assert.match(body.error.message, /Host/)
    assert.equal(body.error.request_id, res.headers['x-relaykey-request-id'])
  })

  it('serves a request with an Expect it does not know as if it had none (no bare 417), and never forwards Expect', async () => {
    partner.received.length = 0
    const port = Number(new URL(rk.proxyUrl).port)
    const res = await rawRequest(port, `GET /proxy/acme/resources/applicants/1 HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nX-RelayKey: ${setup.key}\r\n\r\n`)
    assert.equal(res.status, 200)
    assert.match(res.headers['x-relaykey-request-id'] ?? '', /^[0-9a-f-]{36}$/)
    assert.equal(partner.received.length, 1)
    assert.equal(partner.received[0]!.headers.expect, undefined)
  })

  it('400 bad_request as JSON for requests Node cannot parse', async () => {
    const port = Number(new URL(rk.proxyUrl).port)
    const malformed = await rawRequest(port, `GET /proxy/acme/x HTTP/1.1\r\nHost: a\r\nthis is not a header\r\n\r\n`)
    assert.equal(malformed.status, 400)
    const body = JSON.parse(malformed.body)
    assert.equal(body.error.code, 'bad_request')
    assert.equal(body.error.request_id, malformed.headers['x-relaykey-request-id'])
  })

  it('502 upstream_error when the partner refuses connections', async () => {
    const closedPort = await freePort()
    const dead = await setUpGovernedPartner(rk, { slug: 'dead', baseUrl: `http://127.0.0.1:${closedPort}` })
    await refused(url('dead/x'), { 'x-relaykey': dead.key }, 502, 'upstream_error')
  })

  it('504 upstream_timeout when the partner does not answer within timeouts.request_ms', async () => {
    const { port } = blackHole.address() as { port: number }
    const slow = await setUpGovernedPartner(rk, { slug: 'slow', baseUrl: `http://127.0.0.1:${port}` })
    assert.equal((await rk.admin('PATCH', '/admin/partners/slow', { timeouts: { connect_ms: 1000, request_ms: 300 } })).status, 200)
    await sleep(300)
    const started = Date.now()
    await refused(url('slow/x'), { 'x-relaykey': slow.key }, 504, 'upstream_timeout')
    assert.ok(Date.now() - started < 5000)
  })
})
