// Path-escape attempts sent as raw bytes to a running RelayKey: each one is either refused
// before any upstream contact or reaches the partner under its base path, and nothing else.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { startRelayKey, setUpGovernedPartner, type RelayKeyProcess, type GovernedSetup } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { rawRequest } from '../helpers/raw-http.js'

const BASE_PATH = '/api/v1'
const INVALID_PATH = { status: 400, refused: ['invalid_path'] }
const BAD_REQUEST = { status: 400, refused: ['bad_request'] }

/** `e` is the "elsewhere" port: the place every attempt tries to reach instead of the partner */
type Target = (e: number) => string

type Outcome =
  /** the contract's status and one of these error codes, before any upstream contact */
  | { status: number; refused: string[] }
  /** forwarded; the partner saw exactly this request target */
  | { forwarded: string }

interface Case {
  name: string
  /** the request line's target; `line` overrides the whole request line (absolute-form, CONNECT) */
  target?: Target
  line?: Target
  /** replaces the Host header */
  host?: Target
  outcome: Outcome
}

const cases: Case[] = [
  // dot segments, raw and percent-encoded
  { name: 'raw ../..', target: () => '/proxy/acme/../../admin', outcome: INVALID_PATH },
  { name: 'raw .. after a segment', target: () => '/proxy/acme/x/../../../admin', outcome: INVALID_PATH },
  { name: 'trailing ..', target: () => '/proxy/acme/x/..', outcome: INVALID_PATH },
  { name: 'single dot', target: () => '/proxy/acme/./x', outcome: INVALID_PATH },
  { name: '%2e%2e', target: () => '/proxy/acme/%2e%2e/secret', outcome: INVALID_PATH },
  { name: 'mixed-case %2E%2e', target: () => '/proxy/acme/%2E%2e/secret', outcome: INVALID_PATH },
  { name: 'half-encoded .%2e and %2e.', target: () => '/proxy/acme/.%2e/%2e./secret', outcome: INVALID_PATH },
  { name: 'overlong UTF-8 dots %c0%ae', target: () => '/proxy/acme/%c0%ae%c0%ae/secret', outcome: INVALID_PATH },
  // a decoding upstream would see '%2e%2e' here, never '..': a literal segment under the base path
  { name: 'double-encoded %252e%252e', target: () => '/proxy/acme/%252e%252e/secret', outcome: { forwarded: `${BASE_PATH}/%252e%252e/secret` } },
  // path parameters: '..;' is '..' to Tomcat and Spring
  { name: '..;/', target: () => '/proxy/acme/..;/x', outcome: INVALID_PATH },
  { name: '..%3B/', target: () => '/proxy/acme/..%3B/x', outcome: INVALID_PATH },
  // encoded separators
  { name: 'a%2Fb', target: () => '/proxy/acme/a%2Fb', outcome: INVALID_PATH },
  { name: '..%2F..%2F', target: () => '/proxy/acme/..%2F..%2Fadmin', outcome: INVALID_PATH },
  { name: '%2F%2Fhost', target: (e) => `/proxy/acme/%2F%2F127.0.0.1:${e}/x`, outcome: INVALID_PATH },
  // backslashes, which WHATWG URL parsers read as '/'
  { name: 'raw backslashes', target: () => '/proxy/acme/\\..\\x', outcome: INVALID_PATH },
  { name: 'raw \\\\host', target: (e) => `/proxy/acme/\\\\127.0.0.1:${e}\\x`, outcome: INVALID_PATH },
  { name: '%5C backslashes', target: () => '/proxy/acme/%5C..%5Cx', outcome: INVALID_PATH },
  { name: 'mixed-case %5c%5Chost', target: (e) => `/proxy/acme/%5c%5C127.0.0.1:${e}/x`, outcome: INVALID_PATH },
  // authorities smuggled into the path
  { name: '//host (network-path reference)', target: (e) => `/proxy/acme//127.0.0.1:${e}/x`, outcome: INVALID_PATH },
  { name: '@host (userinfo look-alike)', target: (e) => `/proxy/acme/@127.0.0.1:${e}/x`, outcome: { forwarded: `${BASE_PATH}/@127.0.0.1:ELSEWHERE/x` } },
  { name: '%40host', target: (e) => `/proxy/acme/%40127.0.0.1:${e}/x`, outcome: { forwarded: `${BASE_PATH}/%40127.0.0.1:ELSEWHERE/x` } },
  { name: 'absolute URL in the path', target: (e) => `/proxy/acme/http://127.0.0.1:${e}/x`, outcome: INVALID_PATH },
  { name: 'absolute URL with userinfo in the path', target: (e) => `/proxy/acme/http://u@127.0.0.1:${e}/x`, outcome: INVALID_PATH },
  { name: 'absolute URL, %2F-encoded', target: (e) => `/proxy/acme/http:%2F%2F127.0.0.1:${e}/x`, outcome: INVALID_PATH },
  // one slash after the scheme is an ordinary segment named 'http:'
  { name: 'http:/host, one slash', target: (e) => `/proxy/acme/http:/127.0.0.1:${e}/x`, outcome: { forwarded: `${BASE_PATH}/http:/127.0.0.1:ELSEWHERE/x` } },
  // the query string is passed on as is, but it cannot move the path
  { name: 'escape attempt in the query', target: (e) => `/proxy/acme/x?next=//127.0.0.1:${e}/../../admin`, outcome: { forwarded: `${BASE_PATH}/x?next=//127.0.0.1:ELSEWHERE/../../admin` } },
  // a fragment: '#' may not appear in a request target at all (RFC 9112 §3.2), and an upstream
  // that reads the target as a URL drops what follows it, so '..#' is the segment '..' there
  // (forwarded as /api/v1/..#, a WHATWG URL parser would read /api/); also in the query, where
  // a query-auth credential appended after it would never reach the partner
  { name: 'a#/../../x', target: () => '/proxy/acme/a#/../../x', outcome: INVALID_PATH },
  { name: '..# (dot segment ended by a fragment)', target: () => '/proxy/acme/..#', outcome: INVALID_PATH },
  { name: '%2e%2e#x (encoded dot segment ended by a fragment)', target: () => '/proxy/acme/%2e%2e#x', outcome: INVALID_PATH },
  { name: '# in the query', target: () => '/proxy/acme/x?a=1#b', outcome: BAD_REQUEST },
  // the partner segment never names anything but a configured partner
  { name: 'encoded escape in the partner segment', target: () => '/proxy/acme%2F..%2F/x', outcome: { status: 404, refused: ['unknown_partner'] } },
  { name: '.. as the partner segment', target: () => '/proxy/../proxy/acme/x', outcome: { status: 404, refused: ['unknown_partner'] } },
  // the request target itself
  { name: 'absolute-form request line', line: (e) => `GET http://127.0.0.1:${e}/x HTTP/1.1`, outcome: BAD_REQUEST },
  { name: 'absolute-form naming a proxy path', line: (e) => `GET http://127.0.0.1:${e}/proxy/acme/x HTTP/1.1`, outcome: BAD_REQUEST },
  { name: 'CONNECT to elsewhere', line: (e) => `CONNECT 127.0.0.1:${e} HTTP/1.1`, outcome: BAD_REQUEST },
  // the client's Host is never the upstream's
  { name: 'Host naming elsewhere', target: () => '/proxy/acme/x', host: (e) => `127.0.0.1:${e}`, outcome: { forwarded: `${BASE_PATH}/x` } },
]

describe('path escapes over the wire never leave the partner\'s origin and base path', () => {
  let rk: RelayKeyProcess
  let partner: MockPartner
  let setup: GovernedSetup
  let elsewhere: Server
  let elsewherePort: number
  let elsewhereConnections = 0

  before(async () => {
    partner = await startMockPartner()
    elsewhere = createServer((_req, res) => { res.end() })
    // connections, not requests: an attempt that merely opened a socket there already escaped
    elsewhere.on('connection', () => { elsewhereConnections++ })
    elsewhere.listen(0, '127.0.0.1')
    await once(elsewhere, 'listening')
    elsewherePort = (elsewhere.address() as { port: number }).port
    rk = await startRelayKey()
    setup = await setUpGovernedPartner(rk, { baseUrl: `${partner.url}${BASE_PATH}` })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    rmSync(rk.dataDir, { recursive: true, force: true })
    await partner.close()
    elsewhere.closeAllConnections()
    await new Promise<void>((resolve) => elsewhere.close(() => resolve()))
  })

  for (const c of cases) {
    const expected = 'refused' in c.outcome ? `${c.outcome.status} ${c.outcome.refused.join(' or ')}` : 'forwarded under the base path'
    it(`${c.name}: ${expected}`, async () => {
      const e = elsewherePort
      const line = c.line !== undefined ? c.line(e) : `GET ${c.target!(e)} HTTP/1.1`
      const host = c.host !== undefined ? c.host(e) : 'relaykey.local'
      const before = partner.received.length
      const res = await rawRequest(Number(new URL(rk.proxyUrl).port), [
        line, `Host: ${host}`, `X-RelayKey: ${setup.key}`, '', '',
      ].join('\r\n'))

      if ('refused' in c.outcome) {
        assert.equal(res.status, c.outcome.status, res.body)
        const body = JSON.parse(res.body) as { error: { code: string } }
        assert.ok(c.outcome.refused.includes(body.error.code), body.error.code)
        assert.equal(partner.received.length, before, 'a refused request reached the partner')
      } else {
        assert.equal(res.status, 200, res.body)
        assert.equal(partner.received.length, before + 1)
        const seen = partner.received.at(-1)!
        assert.equal(seen.url, c.outcome.forwarded.replace('ELSEWHERE', String(e)))
        assert.equal(seen.headers.host, `127.0.0.1:${partner.port}`)
        assertUnderBasePath(seen.url, partner.url)
      }
      assert.equal(elsewhereConnections, 0, 'something connected to the elsewhere server')
    })
  }
})

/**
 * The check a user cares about, independent of the exact bytes: read the way a WHATWG URL
 * parser (and so most upstream frameworks) reads it, the target keeps the partner's origin and
 * stays under the base path, and once percent-decoded it has no dot segment or backslash.
 */
function assertUnderBasePath (target: string, origin: string): void {
  const resolved = new URL(target, origin)
  assert.equal(resolved.origin, origin)
  assert.ok(resolved.pathname.startsWith(BASE_PATH + '/'), resolved.pathname)
  const q = target.indexOf('?')
  const path = q === -1 ? target : target.slice(0, q)
  assert.ok(path.startsWith(BASE_PATH + '/'), path)
  const decoded = decodeURIComponent(path)
  assert.ok(!decoded.includes('\\'), decoded)
  for (const segment of decoded.split('/')) assert.ok(segment !== '.' && segment !== '..', decoded)
}
