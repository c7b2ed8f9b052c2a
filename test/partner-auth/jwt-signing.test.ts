// `jwt` partner auth, fronted as a user would: HTTPS mocks written from Fireblocks' "Signing a
// request" description verify every token with node:crypto (signature, uri = path with query as
// the partner receives it, bodyHash, sub, a never-seen nonce, the iat/exp window) and answer 401
// on any mismatch; RelayKey trusts their CA through the partner's own `tls.ca`. The Fireblocks
// preset (RS256) and a custom ES256 shape both pass, concurrent requests never share a nonce, a
// client's own Authorization never reaches the partner, a key of the wrong type leaves its
// credential out of rotation, and a replayed token is refused by the partner itself.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { request as httpsRequest } from 'node:https'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startRelayKey, setUpGovernedPartner, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { generateSigningKeys, sha256Hex, startJwtVerifierMock, type JwtRequest, type JwtVerifierMock } from '../helpers/mock-vendors/jwt-verifier.js'
import { makeTestPki, type TestPki } from '../helpers/test-certificates.js'

const API_KEY = randomUUID()
const KEY_ID = 'relaykey-test-es256-1'
const inline = (value: string): { provider: 'inline'; value: string } => ({ provider: 'inline', value })

interface ErrorBody { error: { code: string; message: string; request_id: string } }

describe('jwt partner auth over HTTPS with the partner\'s own CA', () => {
  let rk: RelayKeyProcess
  let pki: TestPki
  let fireblocks: JwtVerifierMock
  let custody: JwtVerifierMock
  let fb: GovernedSetup
  let es: GovernedSetup
  let wrongKey: GovernedSetup

  before(async () => {
    pki = makeTestPki()
    const keys = generateSigningKeys()
    fireblocks = await startJwtVerifierMock({ apiKey: API_KEY, publicKeys: { current: keys.rs256.publicKey }, algorithm: 'RS256' })
    custody = await startJwtVerifierMock({ publicKeys: { current: keys.es256.publicKey }, algorithm: 'ES256' })
    rk = await startRelayKey({ workers: 2 })
    const tls = { ca: inline(pki.ca.cert) }
    // a base URL with a path: the partner receives (and the uri claim must name) /v1/…
    fb = await setUpGovernedPartner(rk, {
      slug: 'fireblocks',
      baseUrl: `${fireblocks.url}/v1`,
      auth: { type: 'jwt', preset: 'fireblocks' },
      partner: { tls },
      secret: inline(API_KEY),
      // inline PEM, line breaks and all
      credential: { private_key: inline(keys.rs256.privateKey) },
    })
    es = await setUpGovernedPartner(rk, {
      slug: 'custody',
      baseUrl: `${custody.url}/api`,
      auth: {
        type: 'jwt',
        algorithm: 'ES256',
        header: { name: 'Authorization', prefix: 'Bearer ' },
        path_claim: 'uri',
        nonce_claim: 'nonce',
        body_hash_claim: 'bodyHash',
        claims: { aud: 'custody' },
        key_id: KEY_ID,
      },
      partner: { tls },
      // nothing in this shape carries a secret: the private key is the whole credential
      credential: { secret: null, private_key: inline(keys.es256.privateKey) },
    })
    // the same RS256 preset, but the credential holds an EC key
    wrongKey = await setUpGovernedPartner(rk, {
      slug: 'fireblocks-ec-key',
      baseUrl: `${fireblocks.url}/v1`,
      auth: { type: 'jwt', preset: 'fireblocks' },
      partner: { tls },
      secret: inline(API_KEY),
      credential: { private_key: inline(keys.es256.privateKey) },
    })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    await fireblocks.close()
    await custody.close()
  })

  const call = (setup: GovernedSetup, slug: string, method: string, path: string, body?: string, headers: Record<string, string> = {}) =>
    request(`${rk.proxyUrl}/proxy/${slug}${path}`, { method: method as 'GET', headers: { 'x-relaykey': setup.key, ...headers }, body })

  const verdicts = (records: JwtRequest[]): [string, string, boolean, string | undefined][] =>
    records.map((r) => [r.method, r.url, r.accepted, r.reason])

  it('Fireblocks preset: a GET with a query and a POST with JSON each carry a token the partner accepts', async () => {
    const before = fireblocks.received.length
    const get = await call(fb, 'fireblocks', 'GET', '/vault/accounts_paged?namePrefix=Main%20vault&limit=5')
    assert.equal(get.statusCode, 200, await get.body.text())
    const json = JSON.stringify({ assetId: 'ETH', amount: '0.01', source: { type: 'VAULT_ACCOUNT', id: '0' }, note: 'ünïcode' })
    const post = await call(fb, 'fireblocks', 'POST', '/transactions', json, { 'content-type': 'application/json' })
    assert.equal(post.statusCode, 200, await post.body.text())

    const seen = fireblocks.received.slice(before)
    assert.deepEqual(verdicts(seen), [
      ['GET', '/v1/vault/accounts_paged?namePrefix=Main%20vault&limit=5', true, undefined],
      ['POST', '/v1/transactions', true, undefined],
    ])
    const [g, p] = seen as [JwtRequest, JwtRequest]
    // what the verifier checked, spelled out
    assert.equal(g.claims!.uri, '/v1/vault/accounts_paged?namePrefix=Main%20vault&limit=5')
    assert.equal(g.claims!.bodyHash, sha256Hex(''))
    assert.equal(p.claims!.uri, '/v1/transactions')
    assert.equal(p.claims!.bodyHash, sha256Hex(Buffer.from(json)))
    assert.ok(p.body.equals(Buffer.from(json)), 'the body arrived byte for byte')
    for (const r of seen) {
      assert.equal(r.jwtHeader!.alg, 'RS256')
      assert.equal(r.claims!.sub, API_KEY)
      assert.equal(r.headers['x-api-key'], API_KEY)
      assert.equal((r.claims!.exp as number) - (r.claims!.iat as number), 30)
      assert.ok(Math.abs((r.claims!.iat as number) - Date.now() / 1000) < 10, 'iat is now')
    }
    assert.notEqual(g.claims!.nonce, p.claims!.nonce)
  })

  it('custom ES256 shape: kid in the JWT header, the fixed aud claim, and the partner accepts GET and POST', async () => {
    const before = custody.received.length
    const get = await call(es, 'custody', 'GET', '/wallets?chain=eth&page=2')
    assert.equal(get.statusCode, 200, await get.body.text())
    const json = JSON.stringify({ wallet: 'w-1', to: '0xabc', value: '1000' })
    const post = await call(es, 'custody', 'POST', '/wallets/w-1/transfers', json, { 'content-type': 'application/json' })
    assert.equal(post.statusCode, 200, await post.body.text())

    const seen = custody.received.slice(before)
    assert.deepEqual(verdicts(seen), [
      ['GET', '/api/wallets?chain=eth&page=2', true, undefined],
      ['POST', '/api/wallets/w-1/transfers', true, undefined],
    ])
    for (const r of seen) {
      assert.deepEqual(r.jwtHeader, { alg: 'ES256', typ: 'JWT', kid: KEY_ID })
      assert.equal(r.claims!.aud, 'custody')
      assert.equal(r.claims!.sub, undefined, 'no subject: this shape does not send a secret')
      assert.equal(r.headers['x-api-key'], undefined)
    }
    assert.equal(seen[1]!.claims!.bodyHash, sha256Hex(json))
  })

  it('20 concurrent requests each carry a fresh nonce (none refused), and a client\'s own Authorization never passes', async () => {
    const before = fireblocks.received.length
    const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const res = i % 2 === 0
        ? await call(fb, 'fireblocks', 'GET', `/vault/accounts/${i}?i=${i}`)
        : await call(fb, 'fireblocks', 'POST', '/transactions', JSON.stringify({ i, pad: randomBytes(8).toString('hex') }), { 'content-type': 'application/json' })
      return [res.statusCode, await res.body.text()] as const
    }))
    for (const [status, text] of answers) assert.equal(status, 200, text)
    const seen = fireblocks.received.slice(before)
    assert.equal(seen.length, 20)
    assert.deepEqual(seen.filter((r) => !r.accepted).map((r) => r.reason), [], 'the partner refused none')
    assert.equal(new Set(seen.map((r) => r.claims!.nonce)).size, 20, 'twenty different nonces')

    // the client's own token and API key are dropped; RelayKey's take their place
    const forged = 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.'
    const at = fireblocks.received.length
    const res = await call(fb, 'fireblocks', 'GET', '/vault/accounts/1', undefined, { authorization: forged, 'x-api-key': 'mallory' })
    assert.equal(res.statusCode, 200, await res.body.text())
    const got = fireblocks.received[at]!
    assert.equal(got.accepted, true, got.reason)
    assert.notEqual(got.headers.authorization, forged)
    assert.equal(got.headers['x-api-key'], API_KEY)
    const sent = (name: string): number => got.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === name).length
    assert.equal(sent('authorization'), 1, 'one Authorization header, RelayKey\'s')
    assert.equal(sent('x-api-key'), 1)
  })

  it('leaves a credential whose private key is EC out of rotation on an RS256 partner: 502 partner_misconfigured, and says why', async () => {
    const before = fireblocks.received.length
    const res = await call(wrongKey, 'fireblocks-ec-key', 'GET', '/vault/accounts_paged')
    assert.equal(res.statusCode, 502)
    const body = await res.body.json() as ErrorBody
    assert.equal(body.error.code, 'partner_misconfigured')
    assert.match(body.error.message, /none of its credentials for environment production is usable/)
    assert.equal(fireblocks.received.length, before, 'nothing was sent')

    // the worker logs why (asynchronously to the answer: wait a little for the line)
    let line: Record<string, unknown> | undefined
    for (let i = 0; i < 40 && line === undefined; i++) {
      line = logLines(rk).find((l) => l.msg === 'credential unusable; left out of rotation' && l.partner === 'fireblocks-ec-key')
      if (line === undefined) await sleep(50)
    }
    assert.ok(line !== undefined, 'the log says the credential is unusable')
    assert.equal(line.credential_id, wrongKey.credentialId)
    // the reason names what is wrong: the key is not the RSA key RS256 needs
    assert.match(String(line.err), /^private_key is not usable: private_key is not an RSA key\b.*RS256/)
    assert.doesNotMatch(rk.output(), /BEGIN PRIVATE KEY/, 'no key material in the log')
  })

  it('replay protection is the partner\'s: a token the verifier accepted, sent again as is, is refused with "nonce reused"', async () => {
    const json = JSON.stringify({ assetId: 'BTC', amount: '0.5' })
    const at = fireblocks.received.length
    const res = await call(fb, 'fireblocks', 'POST', '/transactions', json, { 'content-type': 'application/json' })
    assert.equal(res.statusCode, 200, await res.body.text())
    const original = fireblocks.received[at]!
    assert.equal(original.accepted, true, original.reason)

    // the very same bytes (headers and body) straight to the partner, bypassing RelayKey
    const headers: [string, string][] = []
    for (let i = 0; i < original.rawHeaders.length; i += 2) headers.push([original.rawHeaders[i]!, original.rawHeaders[i + 1]!])
    const replay = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(`${fireblocks.url}${original.url}`, {
        method: original.method,
        ca: pki.ca.cert,
        headers: Object.fromEntries(headers.filter(([name]) => name.toLowerCase() !== 'connection')),
      }, (response) => {
        const chunks: Buffer[] = []
        response.on('data', (c: Buffer) => chunks.push(c))
        response.on('end', () => resolve({ status: response.statusCode!, body: Buffer.concat(chunks).toString() }))
        response.on('error', reject)
      })
      req.on('error', reject)
      req.end(original.body)
    })
    assert.equal(replay.status, 401)
    assert.deepEqual(JSON.parse(replay.body), { message: 'nonce reused', code: 401 })
    const record = fireblocks.received.at(-1)!
    assert.equal(record.claims!.nonce, original.claims!.nonce, 'the replay carried the same token')
    assert.equal(record.reason, 'nonce reused')
  })
})

function logLines (rk: RelayKeyProcess): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = []
  for (const text of rk.output().split('\n')) {
    if (!text.startsWith('{')) continue
    try {
      lines.push(JSON.parse(text) as Record<string, unknown>)
    } catch {
      // a line cut by the pipe, or not ours
    }
  }
  return lines
}
