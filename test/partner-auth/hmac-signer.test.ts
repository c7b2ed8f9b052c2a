// The per-attempt signers on their own: HmacSigner and JwtSigner build exactly what a partner
// would check. Every expected signature is recomputed here with node:crypto alone, from the
// headers the signer pushed (timestamp, nonce) and the documented canonical string, so a signer
// that reorders, drops or mis-encodes a part fails.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac, createPublicKey, generateKeyPairSync, verify } from 'node:crypto'
import { HmacSigner } from '../../src/partner-auth/hmac-signer.js'
import { JwtSigner } from '../../src/partner-auth/jwt-signer.js'
import type { HmacAuth, JwtAuth } from '../../src/store/model.js'

const SIGNING_SECRET = 'whsec_9f1c2d3e4b5a69788796a5b4c3d2e1f0'
const API_KEY = 'ak_live_4c1f0e9d8b7a6c5d'

/** every value of `name` (any case) in a flat name, value list */
function values (headers: readonly string[], name: string): string[] {
  const out: string[] = []
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === name) out.push(headers[i + 1]!)
  return out
}

/** the one value of `name`: a signer must set each of its headers exactly once */
function one (headers: readonly string[], name: string): string {
  const found = values(headers, name)
  assert.equal(found.length, 1, `${name} should be set once, got ${JSON.stringify(found)}`)
  return found[0]!
}

function sumsubLike (overrides: Partial<HmacAuth> = {}): HmacAuth {
  return {
    type: 'hmac',
    preset: null,
    algorithm: 'sha256',
    encoding: 'hex',
    canonical: ['timestamp', 'method', 'path', 'body'],
    separator: '',
    timestamp_unit: 's',
    timestamp_header: 'x-app-access-ts',
    nonce_header: null,
    signature_header: 'x-app-access-sig',
    signature_prefix: '',
    secret_header: { name: 'x-app-token', prefix: '' },
    max_body_bytes: 10 * 1024 * 1024,
    ...overrides,
  }
}

describe('HmacSigner', () => {
  // A custom scheme using every kind of part: SHA-512, base64, milliseconds, a nonce, '\n'
  // between parts, a client header, a literal, the credential's secret and the body.
  const custom: HmacAuth = {
    type: 'hmac',
    preset: null,
    algorithm: 'sha512',
    encoding: 'base64',
    canonical: ['timestamp', 'nonce', 'method', 'path', { header: 'content-type' }, { literal: 'v1' }, 'secret', 'body'],
    separator: '\n',
    timestamp_unit: 'ms',
    timestamp_header: 'X-Request-Ts',
    nonce_header: 'X-Request-Nonce',
    signature_header: 'X-Request-Signature',
    signature_prefix: '',
    secret_header: { name: 'X-Api-Key', prefix: 'Key ' },
    max_body_bytes: 4096,
  }

  it('signs a custom sha512/base64 scheme over timestamp (ms), nonce, method, path, a header, a literal, the secret and the body', () => {
    const signer = new HmacSigner(custom, SIGNING_SECRET, API_KEY)
    assert.equal(signer.signsBody, true)
    assert.equal(signer.maxBodyBytes, 4096)
    const body = Buffer.from('{"amount":100,"note":"caf\u00e9"}', 'utf8')
    const now = 1_767_225_600_123
    const client = ['Content-Type', 'application/json; charset=utf-8', 'accept', '*/*']
    const headers = [...client]
    signer.sign('post', '/v2/orders?limit=5&cursor=a%2Fb', body, headers, now)

    assert.deepEqual(headers.slice(0, client.length), client, "the client's headers are left as they were")
    const ts = one(headers, 'x-request-ts')
    const nonce = one(headers, 'x-request-nonce')
    assert.equal(ts, String(now), 'milliseconds, not seconds')
    assert.match(nonce, /^[0-9a-f-]{36}$/)
    assert.equal(one(headers, 'x-api-key'), `Key ${API_KEY}`)

    const expected = createHmac('sha512', SIGNING_SECRET)
      .update([ts, nonce, 'POST', '/v2/orders?limit=5&cursor=a%2Fb', 'application/json; charset=utf-8', 'v1', API_KEY].join('\n') + '\n')
      .update(body)
      .digest('base64')
    assert.equal(one(headers, 'x-request-signature'), expected)
    // the signer's headers go out lowercase, whatever case the partner's settings used
    for (const name of ['x-request-ts', 'x-request-nonce', 'x-api-key', 'x-request-signature']) {
      assert.ok(headers.includes(name), `${name} is pushed lowercase`)
    }
  })

  it('signs each call afresh: a new nonce, the new time, a new signature', () => {
    const signer = new HmacSigner(custom, SIGNING_SECRET, API_KEY)
    const first: string[] = []
    const second: string[] = []
    signer.sign('GET', '/v2/orders', null, first, 1_000_000_000_000)
    signer.sign('GET', '/v2/orders', null, second, 1_000_000_000_001)
    assert.notEqual(one(first, 'x-request-nonce'), one(second, 'x-request-nonce'))
    assert.equal(one(second, 'x-request-ts'), '1000000000001')
    assert.notEqual(one(first, 'x-request-signature'), one(second, 'x-request-signature'))
  })

  it('signs a missing canonical header as the empty string', () => {
    const signer = new HmacSigner(custom, SIGNING_SECRET, API_KEY)
    const headers: string[] = []
    signer.sign('GET', '/v2/orders', null, headers, 1_700_000_000_000)
    const expected = createHmac('sha512', SIGNING_SECRET)
      .update([one(headers, 'x-request-ts'), one(headers, 'x-request-nonce'), 'GET', '/v2/orders', '', 'v1', API_KEY, ''].join('\n'))
      .digest('base64')
    assert.equal(one(headers, 'x-request-signature'), expected)
  })

  it('reproduces the Sumsub scheme: lowercase hex HMAC-SHA256 of ts (seconds) + METHOD + path + body', () => {
    const signer = new HmacSigner(sumsubLike(), SIGNING_SECRET, API_KEY)
    const body = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f]) // bytes, not text
    const headers: string[] = []
    signer.sign('post', '/resources/applicants?levelName=basic', body, headers, 1_767_225_600_999)
    assert.equal(one(headers, 'x-app-access-ts'), '1767225600')
    assert.equal(one(headers, 'x-app-token'), API_KEY)
    const expected = createHmac('sha256', SIGNING_SECRET).update('1767225600POST/resources/applicants?levelName=basic').update(body).digest('hex')
    assert.equal(one(headers, 'x-app-access-sig'), expected)
    assert.match(expected, /^[0-9a-f]{64}$/)
  })

  it('encodes HEX in upper case and puts signature_prefix before it', () => {
    const auth = sumsubLike({ encoding: 'HEX', signature_prefix: 'HMAC-SHA256 Signature=', secret_header: null, canonical: ['method', 'path', 'timestamp'], separator: ':' })
    const signer = new HmacSigner(auth, SIGNING_SECRET, null)
    const headers: string[] = []
    signer.sign('DELETE', '/x/1', null, headers, 1_767_225_600_000)
    const hex = createHmac('sha256', SIGNING_SECRET).update('DELETE:/x/1:1767225600').digest('hex').toUpperCase()
    assert.match(hex, /[A-F]/, 'the digest has letters to upper-case')
    assert.equal(one(headers, 'x-app-access-sig'), `HMAC-SHA256 Signature=${hex}`)
    assert.deepEqual(values(headers, 'x-app-token'), [], 'no secret header without secret_header')
  })

  it('signs the same for no body (null) and an empty body', () => {
    const signer = new HmacSigner(sumsubLike(), SIGNING_SECRET, API_KEY)
    const none: string[] = []
    const empty: string[] = []
    signer.sign('GET', '/a', null, none, 1_767_225_600_000)
    signer.sign('GET', '/a', Buffer.alloc(0), empty, 1_767_225_600_000)
    const expected = createHmac('sha256', SIGNING_SECRET).update('1767225600GET/a').digest('hex')
    assert.equal(one(none, 'x-app-access-sig'), expected)
    assert.equal(one(empty, 'x-app-access-sig'), expected)
  })

  it('owns exactly the headers it sets, lowercase, and says whether it signs the body', () => {
    assert.deepEqual([...new HmacSigner(custom, SIGNING_SECRET, API_KEY).ownedHeaders].sort(),
      ['x-api-key', 'x-request-nonce', 'x-request-signature', 'x-request-ts'])
    const bare = sumsubLike({ timestamp_header: null, secret_header: null, canonical: ['method', 'path'], signature_header: 'X-Sig' })
    const signer = new HmacSigner(bare, SIGNING_SECRET, null)
    assert.deepEqual([...signer.ownedHeaders], ['x-sig'])
    assert.equal(signer.signsBody, false)
    assert.equal(signer.ready(), null)
    assert.equal(signer.refused(), false, 'a 401 is not retried: a fresh signature would fail the same')
    assert.equal(signer.carriedSecret(), null, 'no per-attempt secret to redact: the signature is no secret')
  })

  it('sets its own headers before signing, so a canonical header part may name one of them', () => {
    const auth = sumsubLike({ canonical: [{ header: 'X-App-Token' }, { header: 'x-app-access-ts' }, 'path'], separator: ',' })
    const headers: string[] = []
    new HmacSigner(auth, SIGNING_SECRET, API_KEY).sign('GET', '/p', null, headers, 1_767_225_600_000)
    assert.equal(one(headers, 'x-app-access-sig'), createHmac('sha256', SIGNING_SECRET).update(`${API_KEY},1767225600,/p`).digest('hex'))
  })

  it("signs the 'secret' part as empty when the credential has no secret", () => {
    const auth = sumsubLike({ secret_header: null, timestamp_header: null, canonical: ['secret', 'path'], separator: '|' })
    const headers: string[] = []
    new HmacSigner(auth, SIGNING_SECRET, null).sign('GET', '/p', null, headers, 0)
    assert.equal(one(headers, 'x-app-access-sig'), createHmac('sha256', SIGNING_SECRET).update('|/p').digest('hex'))
  })
})

// ---------------------------------------------------------------------------------------------

const keys = {
  rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }),
  p256: generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  p384: generateKeyPairSync('ec', { namedCurve: 'P-384' }),
}
const pem = (pair: { privateKey: import('node:crypto').KeyObject }): string => pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string

function fireblocksLike (overrides: Partial<JwtAuth> = {}): JwtAuth {
  return {
    type: 'jwt',
    preset: null,
    algorithm: 'RS256',
    header: { name: 'authorization', prefix: 'Bearer ' },
    secret_header: { name: 'x-api-key', prefix: '' },
    expires_in_seconds: 30,
    path_claim: 'uri',
    nonce_claim: 'nonce',
    body_hash_claim: 'bodyHash',
    subject_is_secret: true,
    claims: {},
    key_id: null,
    max_body_bytes: 1024,
    ...overrides,
  }
}

interface DecodedJwt {
  header: Record<string, unknown>
  claims: Record<string, unknown>
  signingInput: Buffer
  signature: Buffer
}

function decode (token: string): DecodedJwt {
  const parts = token.split('.')
  assert.equal(parts.length, 3, 'header.claims.signature')
  for (const part of parts) assert.match(part, /^[A-Za-z0-9_-]+$/, 'base64url without padding')
  return {
    header: JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')),
    claims: JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')),
    signingInput: Buffer.from(`${parts[0]}.${parts[1]}`),
    signature: Buffer.from(parts[2]!, 'base64url'),
  }
}

const sha256Hex = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex')

describe('JwtSigner', () => {
  it('RS256: a token the public key verifies, with the request bound in its claims', () => {
    const signer = new JwtSigner(fireblocksLike(), pem(keys.rsa), API_KEY)
    const body = Buffer.from('{"assetId":"BTC","amount":"0.1"}')
    const now = 1_767_225_600_750
    const headers = ['content-type', 'application/json']
    signer.sign('POST', '/v1/transactions?dryRun=true', body, headers, now)
    assert.equal(one(headers, 'x-api-key'), API_KEY)
    const authorization = one(headers, 'authorization')
    assert.ok(authorization.startsWith('Bearer '))
    const jwt = decode(authorization.slice('Bearer '.length))
    assert.deepEqual(jwt.header, { alg: 'RS256', typ: 'JWT' })
    assert.ok(verify('sha256', jwt.signingInput, createPublicKey(keys.rsa.privateKey), jwt.signature), 'RS256 signature verifies')
    assert.ok(!verify('sha256', Buffer.from(jwt.signingInput.toString() + 'x'), keys.rsa.publicKey, jwt.signature), 'and only over what was signed')
    const iat = Math.floor(now / 1000)
    assert.deepEqual(Object.keys(jwt.claims).sort(), ['bodyHash', 'exp', 'iat', 'nonce', 'sub', 'uri'])
    assert.equal(jwt.claims.iat, iat)
    assert.equal(jwt.claims.exp, iat + 30)
    assert.equal(jwt.claims.uri, '/v1/transactions?dryRun=true')
    assert.equal(jwt.claims.sub, API_KEY)
    assert.equal(jwt.claims.bodyHash, sha256Hex(body))
    assert.equal(typeof jwt.claims.nonce, 'string')
  })

  it('ES256: an IEEE P1363 (r||s, 64 bytes) signature the public key verifies', () => {
    const signer = new JwtSigner(fireblocksLike({ algorithm: 'ES256', key_id: 'key-2026-01' }), pem(keys.p256), API_KEY)
    const headers: string[] = []
    signer.sign('GET', '/v1/vault/accounts', null, headers, 1_767_225_600_000)
    const jwt = decode(one(headers, 'authorization').slice('Bearer '.length))
    assert.deepEqual(jwt.header, { alg: 'ES256', typ: 'JWT', kid: 'key-2026-01' })
    assert.equal(jwt.signature.length, 64, 'JOSE wants r||s, not DER')
    assert.ok(verify('sha256', jwt.signingInput, { key: keys.p256.publicKey, dsaEncoding: 'ieee-p1363' }, jwt.signature), 'ES256 signature verifies')
  })

  it('hashes no body and an empty body as SHA-256 of nothing, and uses a fresh nonce each call', () => {
    const signer = new JwtSigner(fireblocksLike(), pem(keys.rsa), API_KEY)
    const a: string[] = []
    const b: string[] = []
    signer.sign('GET', '/v1/a', null, a, 1_767_225_600_000)
    signer.sign('GET', '/v1/a', Buffer.alloc(0), b, 1_767_225_600_000)
    const first = decode(one(a, 'authorization').slice(7)).claims
    const second = decode(one(b, 'authorization').slice(7)).claims
    const empty = sha256Hex('')
    assert.equal(empty, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    assert.equal(first.bodyHash, empty)
    assert.equal(second.bodyHash, empty)
    assert.notEqual(first.nonce, second.nonce, 'a nonce is never reused')
  })

  it('adds fixed claims, leaves out null claim names, keeps sub out unless it is the secret, and honours a custom header', () => {
    const auth = fireblocksLike({
      algorithm: 'ES256',
      header: { name: 'X-Signed-Token', prefix: '' },
      secret_header: null,
      subject_is_secret: false,
      path_claim: null,
      nonce_claim: 'jti',
      body_hash_claim: null,
      expires_in_seconds: 120,
      claims: { iss: 'relaykey', aud: 'custody', ver: 2, live: false },
    })
    const signer = new JwtSigner(auth, pem(keys.p256), null)
    assert.equal(signer.signsBody, false, 'no body hash claim: the body is not read to be signed')
    assert.deepEqual([...signer.ownedHeaders], ['x-signed-token'])
    const headers: string[] = []
    signer.sign('PUT', '/v1/x', Buffer.from('ignored'), headers, 2_000_000_000_000)
    assert.deepEqual(values(headers, 'authorization'), [])
    const jwt = decode(one(headers, 'x-signed-token'))
    assert.deepEqual(jwt.claims, { iss: 'relaykey', aud: 'custody', ver: 2, live: false, iat: 2_000_000_000, exp: 2_000_000_120, jti: jwt.claims.jti })
    assert.equal(typeof jwt.claims.jti, 'string')
    assert.ok(verify('sha256', jwt.signingInput, { key: keys.p256.publicKey, dsaEncoding: 'ieee-p1363' }, jwt.signature))
  })

  it('owns its token header and its secret header, lowercase, and signs the body when it hashes it', () => {
    const signer = new JwtSigner(fireblocksLike({ header: { name: 'Authorization', prefix: 'Bearer ' }, secret_header: { name: 'X-API-Key', prefix: '' } }), pem(keys.rsa), API_KEY)
    assert.deepEqual([...signer.ownedHeaders].sort(), ['authorization', 'x-api-key'])
    assert.equal(signer.signsBody, true)
    assert.equal(signer.maxBodyBytes, 1024)
    assert.equal(signer.ready(), null)
    assert.equal(signer.refused(), false)
    // the token carries the API key (sub), so it is what an echoed header gets redacted for
    const headers: string[] = []
    signer.sign('GET', '/v1/vault', null, headers, Date.now())
    const token = headers[headers.indexOf('authorization') + 1]!.slice('Bearer '.length)
    assert.equal(signer.carriedSecret(headers), token)
    assert.equal(signer.carriedSecret([]), null)
  })

  it('refuses a key its algorithm does not sign with', () => {
    assert.throws(() => new JwtSigner(fireblocksLike({ algorithm: 'RS256' }), pem(keys.p256), API_KEY), /RSA/)
    assert.throws(() => new JwtSigner(fireblocksLike({ algorithm: 'ES256' }), pem(keys.rsa), API_KEY), /P-256/)
    assert.throws(() => new JwtSigner(fireblocksLike({ algorithm: 'ES256' }), pem(keys.p384), API_KEY), /P-256/)
    assert.throws(() => new JwtSigner(fireblocksLike(), 'not a key', API_KEY))
  })
})
