// Sumsub, the partner RelayKey's docs use as their example, fronted as a user would: an HTTPS
// mock written from Sumsub's request-signing description recomputes every signature and answers
// 401 on any mismatch; RelayKey trusts the mock's CA through the partner's own `tls.ca`
// (no NODE_EXTRA_CA_CERTS). GET with a query, POST JSON, a multipart upload and a retried POST
// all pass; a body over the signing bound is refused before anything is sent or charged.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { startRelayKey, setUpGovernedPartner, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startSumsubMock, type SumsubMock } from '../helpers/mock-vendors/sumsub.js'
import { makeTestPki } from '../helpers/test-certificates.js'

const APP_TOKEN = `sbx:${randomBytes(16).toString('hex')}`
const SECRET_KEY = randomBytes(24).toString('hex')
const SIGNED_BODY_LIMIT = 4096

describe('hmac partner auth, Sumsub preset, over HTTPS with the partner\'s own CA', () => {
  let rk: RelayKeyProcess
  let sumsub: SumsubMock
  let setup: GovernedSetup

  before(async () => {
    const pki = makeTestPki()
    sumsub = await startSumsubMock({ appToken: APP_TOKEN, secretKey: SECRET_KEY })
    rk = await startRelayKey({ workers: 2 })
    setup = await setUpGovernedPartner(rk, {
      slug: 'sumsub',
      baseUrl: sumsub.url,
      auth: { type: 'hmac', preset: 'sumsub', max_body_bytes: SIGNED_BODY_LIMIT },
      partner: { tls: { ca: { provider: 'inline', value: pki.ca.cert } }, retry: { max_attempts: 3, base_delay_ms: 1, max_delay_ms: 5 } },
      secret: { provider: 'inline', value: APP_TOKEN },
      credential: { signing_secret: { provider: 'inline', value: SECRET_KEY } },
      // two paid units: the refused bodies below must not spend them
      policy: { budget: { monthly: 5 } },
    })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    await sumsub.close()
  })

  const call = (method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}) =>
    request(`${rk.proxyUrl}/proxy/sumsub${path}`, { method: method as 'GET', headers: { 'x-relaykey': setup.key, ...headers }, body })

  it('signs a GET with a query, a POST with JSON and a multipart upload so the partner accepts each', async () => {
    const get = await call('GET', '/resources/applicants/u%201/one?fields=info&x=a%2Fb')
    assert.equal(get.statusCode, 200, await get.body.text())
    const json = JSON.stringify({ externalUserId: 'user-1', levelName: 'basic-kyc-level', info: { country: 'DEU' } })
    const post = await call('POST', '/resources/applicants?levelName=basic-kyc-level', json, { 'content-type': 'application/json' })
    assert.equal(post.statusCode, 200, await post.body.text())
    const boundary = '----relaykey' + randomBytes(8).toString('hex')
    const image = randomBytes(1500) // binary bytes: signed as bytes, not as text
    const multipart = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{"idDocType":"PASSPORT","country":"DEU"}\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="content"; filename="passport.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`),
      image,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ])
    const upload = await call('POST', '/resources/applicants/abc/info/idDoc', multipart, { 'content-type': `multipart/form-data; boundary=${boundary}` })
    assert.equal(upload.statusCode, 200, await upload.body.text())

    const last3 = sumsub.received.slice(-3)
    assert.deepEqual(last3.map((r) => [r.method, r.signatureValid]), [['GET', true], ['POST', true], ['POST', true]])
    assert.equal(last3[0]!.url, '/resources/applicants/u%201/one?fields=info&x=a%2Fb')
    assert.ok(last3[2]!.body.equals(multipart), 'the multipart body arrived byte for byte')
    assert.equal(last3[2]!.headers['x-app-token'], APP_TOKEN)
  })

  it('signs every attempt of a retried POST afresh, and a client\'s own signature headers never pass', async () => {
    const before = sumsub.received.length
    sumsub.failNext(1, 503)
    const res = await call('POST', '/resources/applicants', '{"a":1}', {
      'content-type': 'application/json',
      'idempotency-key': randomBytes(8).toString('hex'),
      'x-app-access-sig': 'forged', 'x-app-access-ts': '1', 'x-app-token': 'forged',
    })
    assert.equal(res.statusCode, 200, await res.body.text())
    const attempts = sumsub.received.slice(before)
    assert.equal(attempts.length, 2)
    assert.deepEqual(attempts.map((a) => [a.status, a.signatureValid]), [[503, true], [200, true]])
    for (const attempt of attempts) {
      assert.equal(attempt.headers['x-app-token'], APP_TOKEN)
      assert.notEqual(attempt.headers['x-app-access-sig'], 'forged')
    }
  })

  it('refuses a body over the signing bound with 413 before anything reaches the partner or is charged', async () => {
    const before = sumsub.received.length
    const big = randomBytes(SIGNED_BODY_LIMIT + 1)
    const declared = await call('POST', '/resources/applicants', big, { 'content-type': 'application/octet-stream' })
    assert.equal(declared.statusCode, 413)
    const refusal = await declared.body.json() as { error: { code: string } }
    assert.equal(refusal.error.code, 'payload_too_large')
    // chunked: the bound is found while reading
    const chunked = await request(`${rk.proxyUrl}/proxy/sumsub/resources/applicants`, {
      method: 'POST',
      headers: { 'x-relaykey': setup.key, 'content-type': 'application/octet-stream' },
      body: Readable.from((function * () { for (let i = 0; i < 8; i++) yield randomBytes(1024) })()),
    })
    assert.equal(chunked.statusCode, 413)
    assert.equal((await chunked.body.json() as { error: { code: string } }).error.code, 'payload_too_large')
    assert.equal(sumsub.received.length, before, 'nothing was sent')
    // a budget of 5, one unit a request: 3 + 1 spent above (a retried request is one), none by
    // the refusals, so exactly one more is admitted
    const last = await call('GET', '/resources/applicants/x/one')
    assert.equal(last.statusCode, 200, await last.body.text())
    const over = await call('GET', '/resources/applicants/x/one')
    assert.equal(over.statusCode, 429)
    assert.equal((await over.body.json() as { error: { code: string } }).error.code, 'budget_exceeded')
  })
})

describe('bodies held to be signed are bounded per worker (RELAYKEY_SIGNED_BODY_MEMORY_BYTES)', () => {
  let rk: RelayKeyProcess
  let sumsub: SumsubMock
  let setup: GovernedSetup

  before(async () => {
    const pki = makeTestPki()
    sumsub = await startSumsubMock({ appToken: APP_TOKEN, secretKey: SECRET_KEY })
    rk = await startRelayKey({ workers: 1, env: { RELAYKEY_SIGNED_BODY_MEMORY_BYTES: String(1024 * 1024) } })
    setup = await setUpGovernedPartner(rk, {
      slug: 'sumsub',
      baseUrl: sumsub.url,
      auth: { type: 'hmac', preset: 'sumsub', max_body_bytes: 900 * 1024 },
      partner: { tls: { ca: { provider: 'inline', value: pki.ca.cert } } },
      secret: { provider: 'inline', value: APP_TOKEN },
      credential: { signing_secret: { provider: 'inline', value: SECRET_KEY } },
    })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    await sumsub.close()
  })

  const upload = (body: Readable) => request(`${rk.proxyUrl}/proxy/sumsub/resources/applicants/a/info/idDoc`, {
    method: 'POST', headers: { 'x-relaykey': setup.key, 'content-type': 'application/octet-stream' }, body,
  })

  it('refuses 503 with Retry-After while another body holds the memory, and takes bodies again once it is given back', async () => {
    // A: 800 KiB sent, its end held back, so its bytes stay in memory
    const a = new Readable({ read () {} })
    const answerA = upload(a)
    a.push(randomBytes(800 * 1024))
    await new Promise((resolve) => setTimeout(resolve, 300))
    const b = await upload(Readable.from([randomBytes(400 * 1024)]))
    assert.equal(b.statusCode, 503)
    assert.ok(Number(b.headers['retry-after']) >= 1)
    assert.equal((await b.body.json() as { error: { code: string } }).error.code, 'circuit_open')
    a.push(null)
    const resA = await answerA
    assert.equal(resA.statusCode, 200, await resA.body.text())
    const c = await upload(Readable.from([randomBytes(800 * 1024)]))
    assert.equal(c.statusCode, 200, await c.body.text())
    assert.equal(sumsub.received.length, 2, 'A and C reached the partner, B did not')
    assert.ok(sumsub.received.every((r) => r.signatureValid))
  })
})
