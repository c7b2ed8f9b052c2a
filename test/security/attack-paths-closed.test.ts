// Attack paths a client with one valid key (or none), or an admin-token holder, could take to
// get the partner credential or the node's own secrets, tried against a real node (embedded
// mode, two workers) and a mock partner on real sockets:
//   - TRACE / TRACK: an echoing partner would hand the injected credential back;
//   - a `file` secret naming any file the process can read (the data dir's master key);
//   - a client header `X_App_Token`, which CGI-style upstreams read as `X-App-Token`;
//   - a client-sent X-RelayKey-Request-Id passed to the partner as if it were RelayKey's;
//   - the credential coming back in a response header other than Location (Refresh, Link, echo);
//   - `Expect: 100-continue` answered before the key was checked, inviting any upload;
//   - a request with one valid key whose body is unreadable framing: answered, not dropped.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { closedWithin, openRawConnection, parseHead } from '../helpers/raw-connection.js'
import { rawRequest } from '../helpers/raw-http.js'
import { setUpGovernedPartner, startRelayKey, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'

async function eventually (check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) assert.fail('not within 5 s')
    await sleep(10)
  }
}

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

  it('Expect: 100-continue is answered only once the key is good: a bad key hears 401 (and the connection closes) before uploading anything', async () => {
    const port = Number(new URL(rk.proxyUrl).port)
    const head = (key: string): string => `POST /proxy/byquery/upload HTTP/1.1\r\nHost: relaykey\r\nX-RelayKey: ${key}\r\n` +
      'Content-Type: text/plain\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n'
    const refused = await openRawConnection(port)
    refused.socket.write(head('vk_not_a_key'))
    await eventually(() => parseHead(refused.received()) !== null)
    const answer = parseHead(refused.received())!
    assert.equal(answer.status, 401, refused.received().toString())
    assert.equal(answer.headers.connection, 'close')
    assert.notEqual(await closedWithin(refused, 2000), null, 'the connection stayed open waiting for a body that was never asked for')

    const before = partner.received.length
    const accepted = await openRawConnection(port)
    accepted.socket.write(head(viaQuery.key))
    await eventually(() => accepted.received().length > 0)
    assert.match(accepted.received().toString('latin1'), /^HTTP\/1\.1 100 Continue\r\n\r\n$/)
    accepted.socket.write('hello world')
    await eventually(() => partner.received.length > before)
    assert.equal(partner.received.at(-1)!.body.toString(), 'hello world')
    accepted.destroy()
  })

  it('a body that breaks chunked framing is answered 400 bad_request with its request id, the attempt aborted and the event audited as 400', async () => {
    const port = Number(new URL(rk.proxyUrl).port)
    const bodies = {
      'an invalid chunk size': '5\r\nhello\r\nzz\r\n',
      'bare LF line ends': '5\nhello\n0\n\n',
      'a 20 KB chunk extension': `5;${'e'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`,
    }
    const ids: string[] = []
    // POST streams its body to the partner as it arrives; PUT's is read whole first
    for (const method of ['POST', 'PUT']) {
      for (const [what, body] of Object.entries(bodies)) {
        const conn = await openRawConnection(port)
        conn.socket.write(`${method} /proxy/byquery/framing HTTP/1.1\r\nHost: relaykey\r\nX-RelayKey: ${viaQuery.key}\r\nTransfer-Encoding: chunked\r\n\r\n`)
        await sleep(50)
        conn.socket.write(body)
        assert.notEqual(await closedWithin(conn, 3000), null, `${method}, ${what}: the connection stayed open`)
        const answer = parseHead(conn.received())
        assert.ok(answer !== null, `${method}, ${what}: no answer, the connection was just dropped`)
        assert.equal(answer.status, 400, `${method}, ${what}`)
        const error = JSON.parse(answer.body.toString()).error
        assert.equal(error.code, 'bad_request')
        assert.equal(error.request_id, answer.headers['x-relaykey-request-id'])
        ids.push(error.request_id)
      }
    }
    assert.ok(!partner.received.some((r) => r.url.startsWith('/framing')), 'a partner got a whole request from a malformed body')
    for (const id of ids) {
      let event: any
      for (let i = 0; i < 50 && event === undefined; i++) {
        await sleep(100)
        event = (await rk.admin('GET', `/admin/audit?key_id=${viaQuery.keyId}&limit=100`)).body.events.find((e: any) => e.request_id === id)
      }
      assert.equal(event?.status, 400, id)
      assert.equal(event.outcome, 'bad_request')
      assert.equal(event.cost, 0)
    }
  })

  it('a broken body that arrives while the request is still being decided (a key not yet cached) is answered 400 and leaks no slot or budget', async () => {
    const port = Number(new URL(rk.proxyUrl).port)
    const s = `capped${Math.random().toString(36).slice(2, 8)}`
    const capped = await setUpGovernedPartner(rk, { slug: s, baseUrl: partner.url })
    // two workers, one slot each: a leaked slot would turn every later request into a 503
    assert.equal((await rk.admin('PATCH', `/admin/partners/${s}`, { circuit_breaker: { max_in_flight: 2 } })).status, 200)
    assert.equal((await rk.admin('PATCH', `/admin/policies/${capped.policyId}`, { budget: { monthly: 100 } })).status, 200)
    for (let i = 0; i < 4; i++) {
      // a fresh key each time: its first request waits for the key to load
      const key = await rk.admin('POST', '/admin/keys', { name: `fresh-${i}`, policy: capped.policyId, environment: 'production' })
      const conn = await openRawConnection(port)
      // headers and the broken chunk in one write: Node parses both before the key has loaded
      conn.socket.write(`POST /proxy/${s}/broken HTTP/1.1\r\nHost: relaykey\r\nX-RelayKey: ${key.body.key}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`)
      assert.notEqual(await closedWithin(conn, 3000), null)
      assert.equal(parseHead(conn.received())?.status, 400, conn.received().toString())
    }
    for (let i = 0; i < 6; i++) {
      const res = await request(`${rk.proxyUrl}/proxy/${s}/fine`, { headers: { 'x-relaykey': capped.key } })
      await res.body.text()
      assert.equal(res.statusCode, 200, `request ${i} after the broken bodies`)
    }
    assert.ok(!partner.received.some((r) => r.url.startsWith('/broken')))
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
