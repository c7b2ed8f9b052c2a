// Upstream secrets and raw virtual keys never reach a log, an error body, the admin API or the
// database — in either mode. Each run drives the paths most likely to leak (failed upstreams,
// query-string credentials, refusals, rotation) and then searches everything it can read.
// The secret parts of the signing and token schemes are searched the same way: an HMAC
// signing secret and app token (Sumsub), an OAuth2 client id and secret (and the access tokens
// the token server issued), a JWT private key and API key, and an mTLS client key, each with a
// partner that accepts them and one that refuses them.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import postgres from 'postgres'
import { Redis } from 'ioredis'
import { distributedEnv, startRelayKey, setUpGovernedPartner, TEST_REDIS_URL, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { freePort } from '../helpers/ports.js'
import { makeTestPki } from '../helpers/test-certificates.js'
import { startSumsubMock } from '../helpers/mock-vendors/sumsub.js'
import { startOAuth2Mock } from '../helpers/mock-vendors/oauth2.js'
import { generateSigningKeys, startJwtVerifierMock } from '../helpers/mock-vendors/jwt-verifier.js'
import { startMtlsMock } from '../helpers/mock-vendors/mtls.js'

interface Exercise {
  secrets: string[]
  responses: string[]
}

/**
 * Every base64 line of a PEM key: once JSON or a log escapes its line breaks the PEM as a whole
 * no longer matches, but each line still does.
 */
function pemLines (pem: string): string[] {
  return pem.split(/\r?\n/).filter((line) => line.length >= 40 && !line.startsWith('-----'))
}

async function exercise (rk: RelayKeyProcess): Promise<Exercise> {
  const partner = await startMockPartner()
  const headerSecret = `hdr-${randomBytes(12).toString('hex')}`
  const querySecret = `qry-${randomBytes(12).toString('hex')}`
  // the new schemes' secret parts, right and wrong ones
  const appToken = `sbx:app-${randomBytes(12).toString('hex')}`
  const signingSecret = `sig-${randomBytes(12).toString('hex')}`
  const wrongSigningSecret = `sigx-${randomBytes(12).toString('hex')}`
  const clientId = `cid-${randomBytes(12).toString('hex')}`
  const clientSecret = `cs-${randomBytes(12).toString('hex')}`
  const wrongClientSecret = `csx-${randomBytes(12).toString('hex')}`
  const jwtApiKey = `jwt-${randomBytes(12).toString('hex')}`
  const jwtKey = generateSigningKeys().rs256
  const foreignJwtKey = generateSigningKeys().rs256
  const pki = makeTestPki()
  const mtlsClient = pki.client('relaykey-leak-test')
  const ca = { tls: { ca: { provider: 'inline', value: pki.ca.cert } } }
  const sumsub = await startSumsubMock({ appToken, secretKey: signingSecret })
  const oauth = await startOAuth2Mock({ clientId, clientSecret, clientAuth: 'either' })
  const jwt = await startJwtVerifierMock({ apiKey: jwtApiKey, publicKeys: { main: jwtKey.publicKey }, algorithm: 'RS256' })
  const mtls = await startMtlsMock({ clientCa: pki.clientCa })
  const responses: string[] = []
  const statuses: Array<[string, number]> = []
  const keep = async (res: Awaited<ReturnType<typeof request>>, what?: string): Promise<void> => {
    if (what !== undefined) statuses.push([what, res.statusCode])
    responses.push(JSON.stringify(res.headers) + await res.body.text())
  }
  try {
    const ok = await setUpGovernedPartner(rk, { baseUrl: partner.url, secret: { provider: 'inline', value: headerSecret } })
    const deadPort = await freePort()
    const viaQuery = await setUpGovernedPartner(rk, {
      slug: 'querydead', baseUrl: `http://127.0.0.1:${deadPort}/v1`, auth: { type: 'query', name: 'api_key' },
      secret: { provider: 'inline', value: querySecret },
    })
    await keep(await request(`${rk.proxyUrl}/proxy/acme/x?api_key=client`, { headers: { 'x-relaykey': ok.key } }))
    await keep(await request(`${rk.proxyUrl}/proxy/querydead/x?y=1`, { headers: { 'x-relaykey': viaQuery.key } }))
    await keep(await request(`${rk.proxyUrl}/proxy/acme/%2e%2e/x`, { headers: { 'x-relaykey': ok.key } }))
    await keep(await request(`${rk.proxyUrl}/proxy/nobody/x`, { headers: { 'x-relaykey': ok.key } }))
    await keep(await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': ok.key.slice(0, -2) + 'zz' } }))
    const rotated = await rk.admin('POST', `/admin/keys/${ok.keyId}/rotate`, { grace_seconds: 60 })
    assert.equal(rotated.status, 200)
    await keep(await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': rotated.body.key } }))
    await rk.admin('POST', `/admin/keys/${viaQuery.keyId}/revoke`)
    await keep(await request(`${rk.proxyUrl}/proxy/querydead/x`, { headers: { 'x-relaykey': viaQuery.key } }))

    // hmac (Sumsub): signed requests the partner accepts, one refused for its signature, one
    // refused 413 for its size, one whose forged signature headers are dropped
    const viaHmac = await setUpGovernedPartner(rk, {
      slug: 'sumsub', baseUrl: sumsub.url, auth: { type: 'hmac', preset: 'sumsub', max_body_bytes: 1024 }, partner: ca,
      secret: { provider: 'inline', value: appToken }, credential: { signing_secret: { provider: 'inline', value: signingSecret } },
    })
    const viaBadHmac = await setUpGovernedPartner(rk, {
      slug: 'sumsubbad', baseUrl: sumsub.url, auth: { type: 'hmac', preset: 'sumsub' }, partner: ca,
      secret: { provider: 'inline', value: appToken }, credential: { signing_secret: { provider: 'inline', value: wrongSigningSecret } },
    })
    const hmacCall = (slug: string, key: string, path: string, init: { method?: string; body?: string | Buffer; headers?: Record<string, string> } = {}) =>
      request(`${rk.proxyUrl}/proxy/${slug}${path}`, { method: (init.method ?? 'GET') as 'GET', body: init.body, headers: { 'x-relaykey': key, ...init.headers } })
    await keep(await hmacCall('sumsub', viaHmac.key, '/resources/applicants/a1/one?fields=info'), 'hmac GET')
    await keep(await hmacCall('sumsub', viaHmac.key, '/resources/applicants', {
      method: 'POST', body: '{"externalUserId":"u1"}', headers: { 'content-type': 'application/json', 'x-app-access-sig': 'forged', 'x-app-token': 'forged' },
    }), 'hmac POST')
    await keep(await hmacCall('sumsub', viaHmac.key, '/resources/applicants', {
      method: 'POST', body: randomBytes(2048), headers: { 'content-type': 'application/octet-stream' },
    }), 'hmac body over max_body_bytes')
    await keep(await hmacCall('sumsubbad', viaBadHmac.key, '/resources/applicants/a1/one'), 'hmac wrong signing secret')

    // OAuth2: a token fetched and used, revoked and refetched on the partner's 401, and a
    // client the token URL refuses
    const oauthPartner = (slug: string, secret: string, clientAuth: 'basic' | 'body') => ({
      slug, baseUrl: oauth.url, partner: ca, secret: null,
      auth: { type: 'oauth2_client_credentials', token_url: oauth.tokenUrl, scope: 'accounts:read', client_auth: clientAuth },
      credential: { secret: null, client_id: { provider: 'inline', value: clientId }, client_secret: { provider: 'inline', value: secret } },
    })
    const viaOAuth = await setUpGovernedPartner(rk, oauthPartner('oauth', clientSecret, 'basic'))
    const viaBadOAuth = await setUpGovernedPartner(rk, oauthPartner('oauthbad', wrongClientSecret, 'body'))
    await keep(await request(`${rk.proxyUrl}/proxy/oauth/v1/accounts`, { headers: { 'x-relaykey': viaOAuth.key } }), 'oauth2 GET')
    oauth.revokeAll()
    await keep(await request(`${rk.proxyUrl}/proxy/oauth/v1/accounts?after=revoke`, { headers: { 'x-relaykey': viaOAuth.key } }), 'oauth2 GET after a revocation')
    await keep(await request(`${rk.proxyUrl}/proxy/oauthbad/v1/accounts`, { headers: { 'x-relaykey': viaBadOAuth.key } }), 'oauth2 client refused')
    await keep(await request(`${rk.proxyUrl}/proxy/oauthbad/v1/accounts`, {
      method: 'POST', body: '{"a":1}', headers: { 'x-relaykey': viaBadOAuth.key, 'content-type': 'application/json' },
    }), 'oauth2 client refused, POST')

    // jwt (Fireblocks): a signed POST the partner verifies, and a key it does not know
    const jwtPartner = (slug: string, privateKey: string) => ({
      slug, baseUrl: jwt.url, auth: { type: 'jwt', preset: 'fireblocks' }, partner: ca,
      secret: { provider: 'inline', value: jwtApiKey }, credential: { private_key: { provider: 'inline', value: privateKey } },
    })
    const viaJwt = await setUpGovernedPartner(rk, jwtPartner('jwt', jwtKey.privateKey))
    const viaBadJwt = await setUpGovernedPartner(rk, jwtPartner('jwtbad', foreignJwtKey.privateKey))
    await keep(await request(`${rk.proxyUrl}/proxy/jwt/v1/transactions`, {
      method: 'POST', body: '{"assetId":"BTC"}', headers: { 'x-relaykey': viaJwt.key, 'content-type': 'application/json', authorization: 'Bearer client' },
    }), 'jwt POST')
    await keep(await request(`${rk.proxyUrl}/proxy/jwtbad/v1/vault/accounts`, { headers: { 'x-relaykey': viaBadJwt.key } }), 'jwt unknown key')

    // mTLS: the credential's certificate, and a certificate the partner does not trust
    const mtlsPartner = (slug: string, client: { cert: string; key: string }) => ({
      slug, baseUrl: mtls.url, auth: { type: 'mtls' }, partner: { ...ca, retry: { max_attempts: 1 } }, secret: null,
      credential: { secret: null, client_cert: { provider: 'inline', value: client.cert }, client_key: { provider: 'inline', value: client.key } },
    })
    const viaMtls = await setUpGovernedPartner(rk, mtlsPartner('mtls', mtlsClient))
    const viaBadMtls = await setUpGovernedPartner(rk, mtlsPartner('mtlsbad', pki.strangerClient))
    await keep(await request(`${rk.proxyUrl}/proxy/mtls/v1/x`, { headers: { 'x-relaykey': viaMtls.key } }), 'mtls GET')
    await keep(await request(`${rk.proxyUrl}/proxy/mtlsbad/v1/x`, { headers: { 'x-relaykey': viaBadMtls.key } }), 'mtls stranger certificate')

    // every admin read
    const slugs = ['acme', 'querydead', 'sumsub', 'sumsubbad', 'oauth', 'oauthbad', 'jwt', 'jwtbad', 'mtls', 'mtlsbad']
    for (const path of ['/admin/partners', ...slugs.map((s) => `/admin/partners/${s}`), ...slugs.map((s) => `/admin/partners/${s}/credentials`),
      '/admin/policies', '/admin/bindings', '/admin/keys', `/admin/keys/${ok.keyId}`, `/admin/keys/${viaOAuth.keyId}`]) {
      const res = await rk.admin('GET', path)
      assert.equal(res.status, 200, path)
      responses.push(JSON.stringify(res.body))
    }
    // a rotation of each new part answers like any other patch
    for (const [id, body] of [
      [viaHmac.credentialId, { signing_secret: { provider: 'inline', value: signingSecret } }],
      [viaOAuth.credentialId, { client_secret: { provider: 'inline', value: clientSecret } }],
      [viaJwt.credentialId, { private_key: { provider: 'inline', value: jwtKey.privateKey } }],
      [viaMtls.credentialId, { client_key: { provider: 'inline', value: mtlsClient.key } }],
    ] as const) {
      const res = await rk.admin('PATCH', `/admin/credentials/${id}`, body)
      assert.equal(res.status, 200, JSON.stringify(res.body))
      responses.push(JSON.stringify(res.body))
    }

    assert.equal(partner.received[0]!.headers['x-app-token'], headerSecret, 'the secret did reach the partner')
    // each scheme was exercised both ways: accepted by its partner, and refused
    assert.deepEqual(statuses, [
      ['hmac GET', 200], ['hmac POST', 200], ['hmac body over max_body_bytes', 413], ['hmac wrong signing secret', 401],
      ['oauth2 GET', 200], ['oauth2 GET after a revocation', 200], ['oauth2 client refused', 502], ['oauth2 client refused, POST', 502],
      ['jwt POST', 200], ['jwt unknown key', 401],
      ['mtls GET', 200], ['mtls stranger certificate', 502],
    ])
    assert.ok(sumsub.received.some((r) => r.signatureValid && r.headers['x-app-token'] === appToken), 'the app token and signature reached Sumsub')
    assert.ok(!sumsub.received.some((r) => r.headers['x-app-access-sig'] === 'forged'), "a client's forged signature never passed")
    const accessTokens = oauth.tokenRequests.flatMap((r) => r.accessToken === undefined ? [] : [r.accessToken])
    assert.ok(accessTokens.length >= 2, 'a token was issued, revoked and issued again')
    assert.ok(oauth.tokenRequests.some((r) => r.error === 'invalid_client'), 'the token URL refused the wrong client secret')
    assert.ok(oauth.apiRequests.some((r) => r.tokenValid), 'an access token reached the API')
    assert.ok(jwt.received.some((r) => r.accepted) && jwt.received.some((r) => r.reason === 'bad signature'))
    assert.ok(mtls.received.some((r) => r.clientCn === 'relaykey-leak-test'), 'the client certificate was presented')
    return {
      secrets: [
        headerSecret, querySecret, ok.key, viaQuery.key, rotated.body.key,
        appToken, signingSecret, wrongSigningSecret, clientId, clientSecret, wrongClientSecret,
        // the client secret as HTTP Basic carries it (RFC 6749 §2.3.1; both are form-safe as is)
        Buffer.from(`${clientId}:${clientSecret}`).toString('base64'),
        ...accessTokens,
        jwtApiKey, ...pemLines(jwtKey.privateKey), ...pemLines(foreignJwtKey.privateKey),
        ...pemLines(mtlsClient.key), ...pemLines(pki.strangerClient.key),
        viaHmac.key, viaBadHmac.key, viaOAuth.key, viaBadOAuth.key, viaJwt.key, viaBadJwt.key, viaMtls.key, viaBadMtls.key,
      ],
      responses,
    }
  } finally {
    await Promise.all([partner.close(), sumsub.close(), oauth.close(), jwt.close(), mtls.close()])
  }
}

/** every value under RelayKey's Redis prefix (the shared OAuth2 tokens among them), as text */
async function redisDump (prefix: string): Promise<{ keys: string[]; dump: string }> {
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 })
  try {
    const keys: string[] = []
    let cursor = '0'
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      keys.push(...found)
      cursor = next
    } while (cursor !== '0')
    let dump = ''
    for (const key of keys) {
      const type = await redis.type(key)
      const value = type === 'string'
        ? await redis.get(key)
        : type === 'hash' ? await redis.hgetall(key)
          : type === 'list' ? await redis.lrange(key, 0, -1)
            : type === 'set' ? await redis.smembers(key)
              : type === 'zset' ? await redis.zrange(key, 0, -1) : await redis.dump(key)
      dump += `${key} ${JSON.stringify(value)}\n`
    }
    if (keys.length > 0) await redis.del(...keys)
    return { keys, dump }
  } finally {
    redis.disconnect()
  }
}

function assertAbsent (haystack: string, needles: string[], where: string): void {
  for (const needle of needles) assert.ok(!haystack.includes(needle), `${needle.slice(0, 6)}… found in ${where}`)
}

describe('secrets and raw keys never leak', () => {
  it('embedded mode: logs, responses and the SQLite files', async () => {
    const rk = await startRelayKey({ env: { RELAYKEY_LOG_LEVEL: 'trace' } })
    const { secrets, responses } = await exercise(rk)
    assert.equal(await rk.stop(), 0)
    assertAbsent(rk.output(), secrets, 'the logs')
    assertAbsent(responses.join('\n'), secrets, 'responses')
    for (const file of readdirSync(rk.dataDir)) {
      if (!file.startsWith('relaykey.db')) continue
      const bytes = readFileSync(join(rk.dataDir, file)).toString('latin1')
      assertAbsent(bytes, secrets, file)
    }
  })

  it('distributed mode: logs, responses, every PostgreSQL row and every Redis value', async () => {
    const db = await createTestDatabase()
    const env = distributedEnv(db.url, { extra: { RELAYKEY_LOG_LEVEL: 'trace' } })
    const rk = await startRelayKey({ env })
    try {
      const { secrets, responses } = await exercise(rk)
      assert.equal(await rk.stop(), 0)
      assertAbsent(rk.output(), secrets, 'the logs')
      assertAbsent(responses.join('\n'), secrets, 'responses')
      const sql = postgres(db.url, { max: 1, onnotice: () => {} })
      const tables = await sql<{ name: string }[]>`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'`
      assert.ok(tables.length >= 5)
      let dump = ''
      for (const { name } of tables) {
        const rows = await sql.unsafe(`SELECT t::text AS row FROM ${name} t`)
        dump += rows.map((r) => r.row).join('\n')
      }
      await sql.end()
      assert.ok(dump.includes('querydead'), 'the dump has the data')
      assert.ok(dump.includes('"ciphertext"'), 'the dump has sealed secret parts')
      assertAbsent(dump, secrets, 'PostgreSQL')
      const redis = await redisDump(env.RELAYKEY_REDIS_PREFIX!)
      assert.ok(redis.keys.some((k) => k.includes('oauth2:')), 'Redis holds the shared access token')
      assertAbsent(redis.dump, secrets, 'Redis')
    } finally {
      await rk.stop()
      await db.drop()
    }
  })
})
