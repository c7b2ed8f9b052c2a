// An OAuth2 client-credentials vendor fronted by RelayKey: the access token is fetched once per
// expiry for the whole deployment (2 nodes × 2 workers on one PostgreSQL and Redis, and the
// workers of an embedded node), refreshed before it expires, refetched after a revocation on
// the partner's first 401 (one retry, the client sees 200), and a rotated client secret takes
// effect with a new token. The mock is a real HTTPS token server and API.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { distributedEnv, startRelayKey, setUpGovernedPartner, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startOAuth2Mock, type OAuth2Mock } from '../helpers/mock-vendors/oauth2.js'
import { makeTestPki } from '../helpers/test-certificates.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'

const CLIENT_ID = 'relaykey-client'
const LIFETIME_S = 4

async function call (rk: RelayKeyProcess, key: string, path = '/v1/accounts'): Promise<{ status: number; body: string }> {
  const res = await request(`${rk.proxyUrl}/proxy/vendor${path}`, { headers: { 'x-relaykey': key } })
  return { status: res.statusCode, body: await res.body.text() }
}

function oauth2Partner (vendor: OAuth2Mock, clientSecret: string, clientAuth: 'basic' | 'body') {
  return {
    slug: 'vendor',
    baseUrl: vendor.url,
    auth: { type: 'oauth2_client_credentials', token_url: vendor.tokenUrl, scope: 'accounts:read', audience: 'https://api.vendor.test', client_auth: clientAuth },
    partner: { tls: { ca: { provider: 'inline', value: makeTestPki().ca.cert } } },
    secret: null,
    credential: {
      client_id: { provider: 'inline', value: CLIENT_ID },
      client_secret: { provider: 'inline', value: clientSecret },
    },
  }
}

describe('OAuth2 client credentials across 2 nodes × 2 workers', () => {
  let db: TestDatabase
  let vendor: OAuth2Mock
  let nodes: RelayKeyProcess[]
  let key: string
  let credentialId: string
  let secret = randomBytes(16).toString('hex')

  before(async () => {
    db = await createTestDatabase()
    vendor = await startOAuth2Mock({ clientId: CLIENT_ID, clientSecret: secret, expiresInSeconds: LIFETIME_S, clientAuth: 'basic' })
    const env = distributedEnv(db.url)
    nodes = [await startRelayKey({ env, workers: 2 }), await startRelayKey({ env, workers: 2 })]
    const setup = await setUpGovernedPartner(nodes[0]!, oauth2Partner(vendor, secret, 'basic'))
    key = setup.key
    credentialId = setup.credentialId
  })
  after(async () => {
    for (const node of nodes ?? []) assert.equal(await node.stop(), 0)
    await vendor?.close()
    await db?.drop()
  })

  it('fetches one token for every worker of both nodes, and sends it to the partner', async () => {
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => call(nodes[i % 2]!, key)))
    assert.deepEqual(answers.map((a) => a.status), Array(40).fill(200), answers.find((a) => a.status !== 200)?.body)
    assert.equal(vendor.tokenRequests.length, 1, 'one token request for 2 nodes × 2 workers')
    const grant = vendor.tokenRequests[0]!
    assert.deepEqual([grant.status, grant.clientAuth, grant.clientId, grant.grantType, grant.scope, grant.audience],
      [200, 'basic', CLIENT_ID, 'client_credentials', 'accounts:read', 'https://api.vendor.test'])
    assert.ok(vendor.apiRequests.every((r) => r.tokenValid && r.token === grant.accessToken))
  })

  it('refreshes the token before it expires, once, while requests keep flowing', async () => {
    const before = vendor.tokenRequests.length
    const deadline = Date.now() + LIFETIME_S * 1000 * 1.6
    let refused = 0
    while (Date.now() < deadline) {
      const answers = await Promise.all([0, 1, 2, 3].map((i) => call(nodes[i % 2]!, key)))
      refused += answers.filter((a) => a.status !== 200).length
      await sleep(50)
    }
    assert.equal(refused, 0, 'no request failed across the expiry')
    const fetched = vendor.tokenRequests.length - before
    // about one fetch per lifetime for the deployment: 1.6 lifetimes hold one or two refresh
    // points, and a loaded machine may stretch one into a second fetch; one per worker would be
    // 4 each time (8 or more)
    assert.ok(fetched >= 1 && fetched <= 3, `${fetched} token requests in 1.6 lifetimes`)
    assert.ok(vendor.apiRequests.every((r) => r.tokenValid), 'the partner never saw an expired token')
  })

  it('after the partner revokes its tokens, the first 401 fetches a new one and the client still gets 200', async () => {
    const before = vendor.tokenRequests.length
    const apiBefore = vendor.apiRequests.length
    vendor.revokeAll()
    const answer = await call(nodes[0]!, key)
    assert.equal(answer.status, 200, answer.body)
    const attempts = vendor.apiRequests.slice(apiBefore)
    assert.deepEqual(attempts.map((a) => [a.tokenValid, a.reason ?? null]), [[false, 'revoked'], [true, null]])
    assert.equal(vendor.tokenRequests.length, before + 1)
    // the other node takes the new token from the shared store, or fetches once itself after its own 401
    const other = await call(nodes[1]!, key)
    assert.equal(other.status, 200, other.body)
    assert.ok(vendor.tokenRequests.length <= before + 2)
  })

  it('a token URL that refuses the client (a secret rotated at the vendor only) fails the request with 502, naming the access token', async () => {
    vendor.rotateClientSecret(randomBytes(16).toString('hex')) // RelayKey's secret is now wrong
    vendor.revokeAll()
    const answer = await call(nodes[0]!, key)
    // the refetch fails at the token URL: no token, so the request fails with RelayKey's own error
    assert.equal(answer.status, 502, answer.body)
    assert.equal(JSON.parse(answer.body).error.code, 'upstream_error')
    assert.match(JSON.parse(answer.body).error.message, /access token/)
  })

  it('a rotated client secret, saved through the admin API, fetches a new token with it', async () => {
    secret = randomBytes(16).toString('hex')
    vendor.rotateClientSecret(secret)
    const patched = await nodes[0]!.admin('PATCH', `/admin/credentials/${credentialId}`, { client_secret: { provider: 'inline', value: secret } })
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    assert.deepEqual(Object.keys(patched.body.client_secret), ['provider', 'sealed'])
    // the change reaches every node's key cache within about a second
    const deadline = Date.now() + 5000
    let answer = await call(nodes[1]!, key)
    while (answer.status !== 200 && Date.now() < deadline) {
      await sleep(100)
      answer = await call(nodes[1]!, key)
    }
    assert.equal(answer.status, 200, answer.body)
    const last = vendor.tokenRequests.at(-1)!
    assert.equal(last.status, 200)
  })
})

describe('OAuth2 client credentials in embedded mode (client authentication in the body)', () => {
  let vendor: OAuth2Mock
  let rk: RelayKeyProcess

  after(async () => {
    if (rk !== undefined) assert.equal(await rk.stop(), 0)
    await vendor?.close()
  })

  it('shares one token between the node\'s workers', async () => {
    const secret = randomBytes(16).toString('hex')
    vendor = await startOAuth2Mock({ clientId: CLIENT_ID, clientSecret: secret, expiresInSeconds: 3600, clientAuth: 'body' })
    rk = await startRelayKey({ workers: 2 })
    const setup = await setUpGovernedPartner(rk, oauth2Partner(vendor, secret, 'body'))
    const answers = await Promise.all(Array.from({ length: 30 }, () => call(rk, setup.key)))
    assert.deepEqual(answers.map((a) => a.status), Array(30).fill(200), answers.find((a) => a.status !== 200)?.body)
    assert.equal(vendor.tokenRequests.length, 1)
    assert.equal(vendor.tokenRequests[0]!.clientAuth, 'body')
    assert.ok(!rk.output().includes(secret), 'the client secret is in no log line')
    assert.ok(!rk.output().includes(vendor.tokenRequests[0]!.accessToken!), 'nor the access token')
  })
})

describe('OAuth2 with an identity provider on its own origin', () => {
  let idp: OAuth2Mock
  let api: MockPartner
  let rk: RelayKeyProcess

  after(async () => {
    if (rk !== undefined) assert.equal(await rk.stop(), 0)
    await idp?.close()
    await api?.close()
  })

  it('needs token_url_other_origin, and the access token never comes back in a response header', async () => {
    const secret = randomBytes(16).toString('hex')
    idp = await startOAuth2Mock({ clientId: CLIENT_ID, clientSecret: secret })
    api = await startMockPartner()
    // a partner that echoes what it received, the access token included
    api.handle((req, res) => {
      res.writeHead(200, { 'x-echo-authorization': String(req.headers.authorization), 'content-type': 'text/plain' })
      res.end('ok')
    })
    rk = await startRelayKey({ workers: 1 })
    const auth = { type: 'oauth2_client_credentials', token_url: idp.tokenUrl }
    const refused = await rk.admin('POST', '/admin/partners', { slug: 'vendor', base_urls: { production: api.url }, auth })
    assert.equal(refused.status, 400)
    assert.match(refused.body.error.message, /^auth\.token_url: must be on the partner's own origin/)
    const setup = await setUpGovernedPartner(rk, {
      ...oauth2Partner(idp, secret, 'basic'),
      baseUrl: api.url,
      auth: { ...auth, token_url_other_origin: true },
    })
    const res = await request(`${rk.proxyUrl}/proxy/vendor/x`, { headers: { 'x-relaykey': setup.key } })
    assert.equal(res.statusCode, 200, await res.body.text())
    const token = idp.tokenRequests[0]!.accessToken!
    assert.equal(api.received[0]!.headers.authorization, `Bearer ${token}`)
    assert.equal(res.headers['x-echo-authorization'], 'Bearer [redacted]')
  })
})

describe('OAuth2: a 401 on a request that cannot be sent again, and a CA set after the fact', () => {
  let vendor: OAuth2Mock
  let rk: RelayKeyProcess

  after(async () => {
    if (rk !== undefined) assert.equal(await rk.stop(), 0)
    await vendor?.close()
  })

  it('reaches the token URL once the partner\'s tls.ca is set, without a restart', async () => {
    const secret = randomBytes(16).toString('hex')
    vendor = await startOAuth2Mock({ clientId: CLIENT_ID, clientSecret: secret })
    rk = await startRelayKey({ workers: 1 })
    const setup = await setUpGovernedPartner(rk, { ...oauth2Partner(vendor, secret, 'basic'), partner: {} })
    const before = await call(rk, setup.key)
    assert.equal(before.status, 502, before.body)
    assert.equal(vendor.tokenRequests.length, 0, 'the token URL\'s certificate was not trusted')
    const patched = await rk.admin('PATCH', '/admin/partners/vendor', { tls: { ca: { provider: 'inline', value: makeTestPki().ca.cert } } })
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    const deadline = Date.now() + 5000
    let answer = await call(rk, setup.key)
    while (answer.status !== 200 && Date.now() < deadline) {
      await sleep(100)
      answer = await call(rk, setup.key)
    }
    assert.equal(answer.status, 200, answer.body)
  })

  it('drops the token a streamed request\'s 401 carried, so the next request goes with a fresh one', async () => {
    const { key } = (await rk.admin('POST', '/admin/keys', { name: 'k2', policy: (await rk.admin('GET', '/admin/policies')).body[0].id, environment: 'production' })).body
    assert.equal((await call(rk, key)).status, 200)
    vendor.revokeAll()
    // 100 KiB: more than RELAYKEY_RETRY_BUFFER_BYTES keeps, so it streams and cannot go again
    const big = await request(`${rk.proxyUrl}/proxy/vendor/v1/uploads`, {
      method: 'POST', headers: { 'x-relaykey': key, 'content-type': 'application/octet-stream' }, body: randomBytes(100 * 1024),
    })
    assert.equal(big.statusCode, 401, 'the partner\'s 401 goes to the client')
    await big.body.text()
    const tokensBefore = vendor.tokenRequests.length
    const apiBefore = vendor.apiRequests.length
    const next = await call(rk, key)
    assert.equal(next.status, 200, next.body)
    assert.equal(vendor.tokenRequests.length, tokensBefore + 1)
    assert.deepEqual(vendor.apiRequests.slice(apiBefore).map((r) => r.tokenValid), [true], 'no attempt with the revoked token')
  })
})
