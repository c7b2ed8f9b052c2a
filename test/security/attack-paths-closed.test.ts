// Attack paths a client with one valid key (or none), or an admin-token holder, could take to
// get the partner credential or the node's own secrets, tried against a real node (embedded
// mode, two workers) and a mock partner on real sockets:
//   - TRACE / TRACK: an echoing partner would hand the injected credential back;
//   - a `file` secret naming any file the process can read (the data dir's master key);
//   - a client header `X_App_Token`, which CGI-style upstreams read as `X-App-Token`;
//   - a client-sent X-RelayKey-Request-Id passed to the partner as if it were RelayKey's;
//   - the credential coming back in a response header other than Location (Refresh, Link, echo).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { rawRequest } from '../helpers/raw-http.js'
import { setUpGovernedPartner, startRelayKey, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'

const SECRET = `file-secret-${randomBytes(12).toString('hex')}`
const QUERY_SECRET = `query/secret+${randomBytes(12).toString('hex')}`

describe('attack paths are closed', () => {
  let partner: MockPartner
  let rk: RelayKeyProcess
  let secretsDir: string
  let plain: GovernedSetup
  let viaQuery: GovernedSetup

  before(async () => {
    secretsDir = mkdtempSync(join(tmpdir(), 'relaykey-secret-files-'))
    writeFileSync(join(secretsDir, 'acme-token'), `${SECRET}\n`)
    partner = await startMockPartner()
    partner.handle((req, res) => {
      const token = String(req.headers['x-app-token'] ?? new URL(req.url!, 'http://x').searchParams.get('api_key'))
      // an echoing partner: its own URL and the credential it saw, in every header it can
      const self = `http://partner.example${req.url}`
      const body = JSON.stringify({ method: req.method })
      res.writeHead(req.url!.startsWith('/redirect') ? 302 : 200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        location: self,
        refresh: `0; url=${self}`,
        link: `<${self}>; rel="canonical"`,
        'x-echo-token': token,
      })
      res.end(body)
    })
    rk = await startRelayKey({ workers: 2, env: { RELAYKEY_SECRET_FILES_DIR: secretsDir } })
    plain = await setUpGovernedPartner(rk, { baseUrl: partner.url, secret: { provider: 'file', ref: join(secretsDir, 'acme-token') } })
    viaQuery = await setUpGovernedPartner(rk, {
      slug: 'byquery', baseUrl: partner.url, auth: { type: 'query', name: 'api_key' }, secret: { provider: 'inline', value: QUERY_SECRET },
    })
    const limited = await rk.admin('PATCH', `/admin/policies/${plain.policyId}`, { rate_limit: { requests: 1, per_seconds: 3600 } })
    assert.equal(limited.status, 200, JSON.stringify(limited.body))
  }, { timeout: 60_000 })

  after(async () => {
    await rk?.stop()
    await partner?.close()
    rmSync(secretsDir, { recursive: true, force: true })
  })

  it('TRACE and TRACK get 405 method_not_allowed with a request id and Allow, never reach the partner, and spend no limit', async () => {
    const port = Number(new URL(rk.proxyUrl).port)
    for (const method of ['TRACE', 'TRACK']) {
      const res = await rawRequest(port, `${method} /proxy/acme/x HTTP/1.1\r\nHost: relaykey\r\nX-RelayKey: ${plain.key}\r\n\r\n`)
      assert.equal(res.status, 405, `${method}: ${res.body}`)
      const body = JSON.parse(res.body)
      assert.equal(body.error.code, 'method_not_allowed')
      assert.match(body.error.message, new RegExp(method))
      assert.equal(body.error.request_id, res.headers['x-relaykey-request-id'])
      assert.match(res.headers.allow!, /GET/)
      assert.doesNotMatch(res.headers.allow!, /TRACE/)
    }
    assert.equal(partner.received.length, 0)
    // the key's one request an hour is still there
    const ok = await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': plain.key } })
    await ok.body.text()
    assert.equal(ok.statusCode, 200)
  })

  it('a file secret is read from RELAYKEY_SECRET_FILES_DIR only: the data dir\'s master key cannot be named', async () => {
    const received = partner.received.find((r) => r.url === '/x')
    assert.equal(received?.headers['x-app-token'], SECRET)
    const refused = await rk.admin('POST', '/admin/partners/acme/credentials', {
      name: 'stolen', environment: 'production', secret: { provider: 'file', ref: join(rk.dataDir, 'master-key') },
    })
    assert.equal(refused.status, 400)
    assert.equal(refused.body.error.code, 'invalid_request')
    assert.match(refused.body.error.message, /secret\.ref.*RELAYKEY_SECRET_FILES_DIR/)
  })

  it('client headers with "_" never reach the partner, nor its own X-RelayKey-Request-Id: RelayKey\'s own id does', async () => {
    const before = partner.received.length
    const res = await request(`${rk.proxyUrl}/proxy/byquery/items`, {
      headers: { 'x-relaykey': viaQuery.key, x_app_token: 'client-chosen', 'x-relaykey-request-id': 'forged-id', x_custom: '1', 'x-custom': '2' },
    })
    await res.body.text()
    assert.equal(res.statusCode, 200)
    const got = partner.received.slice(before)
    assert.equal(got.length, 1)
    const names = got[0]!.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
    assert.ok(!names.some((n) => n.includes('_')), names.join(','))
    assert.equal(got[0]!.headers['x-custom'], '2')
    assert.equal(got[0]!.headers['x-relaykey-request-id'], res.headers['x-relaykey-request-id'])
    assert.notEqual(res.headers['x-relaykey-request-id'], 'forged-id')
  })

  it('the credential never comes back in a response header: Location, Refresh, Link or an echo', async () => {
    for (const path of ['items?x=1', 'redirect?x=1']) {
      const res = await request(`${rk.proxyUrl}/proxy/byquery/${path}`, { headers: { 'x-relaykey': viaQuery.key } })
      await res.body.text()
      const heads = JSON.stringify(res.headers)
      for (const form of [QUERY_SECRET, encodeURIComponent(QUERY_SECRET)]) assert.ok(!heads.includes(form), `${path}: ${heads}`)
      assert.match(String(res.headers.refresh), /^0; url=http:\/\/partner\.example\//)
      assert.match(String(res.headers.location), /x=1/)
    }
  })
})
