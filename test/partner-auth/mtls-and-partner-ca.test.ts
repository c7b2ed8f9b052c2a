// mTLS partner auth and the partner's own CA, fronted as a user would. An mTLS mock accepts only
// client certificates from its client CA: two equal-weight credentials take turns (the mock sees
// both names), a header credential rides along when the auth asks for one, and a foreign
// certificate or none at all fails closed with nothing reaching the partner. Against plain HTTPS
// servers, a partner without `tls.ca` cannot reach one signed by a private CA until the CA is set
// (no NODE_EXTRA_CA_CERTS: startRelayKey passes PATH and RelayKey's own variables only); a
// certificate for another host, an expired one or one from a CA other than the partner's each
// give 502 upstream_error with the reason in the answer, the log and the metrics, and no retry.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startRelayKey, setUpGovernedPartner, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMtlsMock, type MtlsMock } from '../helpers/mock-vendors/mtls.js'
import { startHttpsMock, type HttpsMock, type VendorRequest } from '../helpers/mock-vendors/https-mock.js'
import { makeTestPki, type PemPair, type TestPki } from '../helpers/test-certificates.js'

const inline = (value: string): { provider: 'inline'; value: string } => ({ provider: 'inline', value })
const clientParts = (pair: PemPair): Record<string, unknown> => ({ client_cert: inline(pair.cert), client_key: inline(pair.key) })

interface ErrorBody { error: { code: string; message: string; request_id: string } }

// failing partners below fail on purpose, many times: their breakers must not open mid-test
const PATIENT_BREAKER = { failure_threshold: 1000 }

describe('mtls partner auth and the partner\'s own CA', () => {
  let rk: RelayKeyProcess
  let pki: TestPki
  let mtls: MtlsMock
  const servers: HttpsMock<VendorRequest>[] = []

  before(async () => {
    pki = makeTestPki()
    mtls = await startMtlsMock({ clientCa: pki.clientCa })
    rk = await startRelayKey({ workers: 2 })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    await mtls.close()
    for (const server of servers) await server.close()
  })

  const call = (setup: GovernedSetup, slug: string, path: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}) =>
    request(`${rk.proxyUrl}/proxy/${slug}${path}`, {
      method: (init.method ?? 'GET') as 'GET',
      headers: { 'x-relaykey': setup.key, ...init.headers },
      body: init.body,
    })

  /** a plain HTTPS partner answering 200 to anything, and a count of the TCP connections it was offered */
  const httpsServer = async (serverCert: PemPair): Promise<{ server: HttpsMock<VendorRequest>; connections: () => number }> => {
    const server = await startHttpsMock<VendorRequest>({ serverCert }, (req) => ({ record: req, answer: { status: 200, json: { ok: true } } }))
    servers.push(server)
    let connections = 0
    server.server.on('connection', () => { connections++ })
    return { server, connections: () => connections }
  }

  const metrics = async (): Promise<string> => {
    const res = await request(`${rk.adminUrl}/metrics`, { headers: { authorization: `Bearer ${rk.adminToken}` } })
    assert.equal(res.statusCode, 200)
    return await res.body.text()
  }

  describe('mTLS', () => {
    it('presents each credential\'s client certificate: two equal-weight credentials take turns', async () => {
      const setup = await setUpGovernedPartner(rk, {
        slug: 'custodian',
        baseUrl: mtls.url,
        auth: { type: 'mtls' },
        partner: { tls: { ca: inline(pki.ca.cert) } },
        // the client certificate is the whole credential: no secret
        credential: { name: 'alpha', secret: null, ...clientParts(pki.client('alpha')) },
      })
      const beta = await rk.admin('POST', '/admin/partners/custodian/credentials', {
        name: 'beta', environment: 'production', ...clientParts(pki.client('beta')),
      })
      assert.equal(beta.status, 201, JSON.stringify(beta.body))

      const before = mtls.received.length
      const answered: string[] = []
      for (let i = 0; i < 20; i++) {
        const res = await call(setup, 'custodian', `/v1/accounts/${i}`)
        const text = await res.body.text()
        assert.equal(res.statusCode, 200, text)
        answered.push((JSON.parse(text) as { clientCn: string }).clientCn)
      }
      const seen = mtls.received.slice(before).map((r) => r.clientCn)
      assert.equal(seen.length, 20)
      assert.deepEqual(seen, answered)
      for (const cn of seen) assert.ok(cn === 'alpha' || cn === 'beta', cn)
      const alpha = seen.filter((cn) => cn === 'alpha').length
      // equal weights, round robin per worker: both serve, roughly half each
      assert.ok(alpha >= 5 && alpha <= 15, `alpha served ${alpha} of 20: ${seen.join(' ')}`)
    })

    it('sends the header credential as well when the mtls auth names a header', async () => {
      const apiKey = randomBytes(16).toString('hex')
      const setup = await setUpGovernedPartner(rk, {
        slug: 'custodian-keyed',
        baseUrl: mtls.url,
        auth: { type: 'mtls', header: { name: 'X-Api-Key', prefix: '' } },
        partner: { tls: { ca: inline(pki.ca.cert) } },
        secret: inline(apiKey),
        credential: { name: 'gamma', ...clientParts(pki.client('gamma')) },
      })
      const before = mtls.received.length
      const res = await call(setup, 'custodian-keyed', '/v1/balances', { headers: { 'x-api-key': 'the client\'s own' } })
      assert.equal(res.statusCode, 200, await res.body.text())
      const got = mtls.received.slice(before)
      assert.equal(got.length, 1)
      assert.equal(got[0]!.clientCn, 'gamma')
      assert.equal(got[0]!.headers['x-api-key'], apiKey)
    })

    it('fails closed with a client certificate from another CA: 502, and nothing reaches the partner', async () => {
      const setup = await setUpGovernedPartner(rk, {
        slug: 'custodian-stranger',
        baseUrl: mtls.url,
        auth: { type: 'mtls' },
        partner: { tls: { ca: inline(pki.ca.cert) }, circuit_breaker: PATIENT_BREAKER },
        credential: { name: 'stranger', secret: null, ...clientParts(pki.strangerClient) },
      })
      const received = mtls.received.length
      const rejected = mtls.rejectedHandshakes.length
      for (let i = 0; i < 3; i++) {
        const res = await call(setup, 'custodian-stranger', '/v1/accounts', { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } })
        assert.equal(res.statusCode, 502)
        assert.equal((await res.body.json() as ErrorBody).error.code, 'upstream_error')
      }
      assert.equal(mtls.received.length, received, 'nothing reached the partner')
      assert.ok(mtls.rejectedHandshakes.length >= rejected + 3, 'the partner refused each handshake')
      const refusals = mtls.rejectedHandshakes.slice(rejected)
      assert.ok(refusals.every((r) => r.authorizationError !== undefined), JSON.stringify(refusals))
    })

    it('fails closed without any client certificate (a header partner at the mTLS host): 502, nothing received', async () => {
      const setup = await setUpGovernedPartner(rk, {
        slug: 'custodian-no-cert',
        baseUrl: mtls.url,
        auth: { type: 'header', name: 'X-Api-Key', prefix: '' },
        partner: { tls: { ca: inline(pki.ca.cert) }, circuit_breaker: PATIENT_BREAKER },
        secret: inline(randomBytes(16).toString('hex')),
      })
      const received = mtls.received.length
      const rejected = mtls.rejectedHandshakes.length
      for (let i = 0; i < 2; i++) {
        const res = await call(setup, 'custodian-no-cert', '/v1/accounts')
        assert.equal(res.statusCode, 502)
        assert.equal((await res.body.json() as ErrorBody).error.code, 'upstream_error')
      }
      assert.equal(mtls.received.length, received, 'nothing reached the partner')
      assert.ok(mtls.rejectedHandshakes.length > rejected, 'the partner refused the handshake')
    })
  })

  describe('the partner\'s own CA, and TLS failures', () => {
    /**
     * `count` requests, each answered 502 upstream_error naming `reason`; each logged, counted,
     * one connection attempt each (retry is on: max_attempts 3), nothing received
     */
    const assertTlsFailure = async (setup: GovernedSetup, slug: string, target: { server: HttpsMock<VendorRequest>; connections: () => number }, reason: string, count = 3): Promise<void> => {
      const words = reason.replaceAll('_', ' ')
      const series = `relaykey_upstream_tls_failures_total{partner="${slug}",reason="${reason}"}`
      const before = { failures: sample(await metrics(), series), connections: target.connections(), received: target.server.received.length }
      const requestIds: string[] = []
      for (let i = 0; i < count; i++) {
        // GETs are what a connection failure would be retried for; a POST too for good measure
        const res = await call(setup, slug, `/v2/orders/${i}?expand=items`, i % 3 === 1 ? { method: 'POST', body: '{"x":1}', headers: { 'content-type': 'application/json' } } : {})
        const text = await res.body.text()
        assert.equal(res.statusCode, 502, text)
        const body = JSON.parse(text) as ErrorBody
        assert.equal(body.error.code, 'upstream_error')
        assert.equal(body.error.message, `the TLS connection to the partner failed (${words})`)
        requestIds.push(body.error.request_id)
      }
      // the attempt's connection is offered before the server sends its certificate, so it is
      // counted before the 502 could exist: no wait needed, and a retry would have shown here
      assert.equal(target.connections() - before.connections, count, 'one connection attempt per request: no retry')
      assert.equal(target.server.received.length, before.received, 'nothing reached the partner')

      const text = await metrics()
      assert.equal(sample(text, series) - before.failures, count)
      for (const r of ['connection', 'status', 'credential_rejected', 'token_refresh']) {
        assert.equal(sample(text, `relaykey_upstream_retries_total{partner="${slug}",reason="${r}"}`), 0, `no ${r} retry`)
      }

      // one error line per request, with the machine-readable reason
      let lines: Record<string, unknown>[] = []
      for (let i = 0; i < 40; i++) {
        lines = logLines(rk).filter((l) => requestIds.includes(String(l.request_id)) && l.msg === `TLS connection to the partner failed: ${words}`)
        if (lines.length === count) break
        await sleep(50)
      }
      assert.equal(lines.length, count, `the log has the TLS failure of each request:\n${rk.output().slice(-3000)}`)
      for (const line of lines) {
        assert.equal(line.level, 50, 'error level')
        assert.equal(line.tls_reason, reason)
        assert.equal(line.partner, slug)
      }
      for (const id of requestIds) {
        assert.match(rk.output(), new RegExp(`"request_id":"${id}".*"tls_reason":"${reason}"`))
      }
    }

    const failingPartner = (slug: string, baseUrl: string, ca: string | null): Promise<GovernedSetup> =>
      setUpGovernedPartner(rk, {
        slug,
        baseUrl,
        auth: { type: 'header', name: 'X-Api-Key', prefix: '' },
        partner: {
          ...(ca === null ? {} : { tls: { ca: inline(ca) } }),
          retry: { max_attempts: 3, base_delay_ms: 1, max_delay_ms: 5 },
          circuit_breaker: PATIENT_BREAKER,
        },
        secret: inline(randomBytes(16).toString('hex')),
      })

    it('a private CA: unknown ca without the partner\'s tls.ca, 200 once it is set', async () => {
      // nothing trusts the test CA process-wide: startRelayKey passes PATH and RelayKey's own
      // variables only (checked where /proc shows it)
      const environ = `/proc/${rk.child.pid}/environ`
      if (existsSync(environ)) assert.doesNotMatch(readFileSync(environ, 'latin1'), /NODE_EXTRA_CA_CERTS|NODE_OPTIONS|NODE_TLS_REJECT_UNAUTHORIZED/)
      const target = await httpsServer(pki.server)
      const setup = await failingPartner('private-ca', target.server.url, null)
      await assertTlsFailure(setup, 'private-ca', target, 'unknown_ca')

      const patched = await rk.admin('PATCH', '/admin/partners/private-ca', { tls: { ca: inline(pki.ca.cert) } })
      assert.equal(patched.status, 200, JSON.stringify(patched.body))
      // the admin change reaches both workers' key caches within about a second
      const deadline = Date.now() + 5000
      let status = 0
      let text = ''
      while (Date.now() < deadline) {
        const res = await call(setup, 'private-ca', '/v2/orders/1')
        status = res.statusCode
        text = await res.body.text()
        if (status === 200) break
        await sleep(100)
      }
      assert.equal(status, 200, text)
      // and it stays so, on whichever worker answers
      for (let i = 0; i < 6; i++) {
        const res = await call(setup, 'private-ca', '/v2/orders/2')
        assert.equal(res.statusCode, 200, await res.body.text())
      }
      assert.ok(target.server.received.length >= 7)
    })

    it('a certificate for another host: hostname mismatch', async () => {
      const target = await httpsServer(pki.wrongHostServer)
      const setup = await failingPartner('wrong-host', target.server.url, pki.ca.cert)
      await assertTlsFailure(setup, 'wrong-host', target, 'hostname_mismatch')
    })

    it('an expired certificate: certificate expired', async () => {
      const target = await httpsServer(pki.expiredServer)
      const setup = await failingPartner('expired-cert', target.server.url, pki.ca.cert)
      await assertTlsFailure(setup, 'expired-cert', target, 'certificate_expired')
    })

    it('a certificate from a CA other than the partner\'s tls.ca: unknown ca', async () => {
      const target = await httpsServer(pki.unknownCaServer)
      const setup = await failingPartner('other-ca', target.server.url, pki.ca.cert)
      await assertTlsFailure(setup, 'other-ca', target, 'unknown_ca')
    })

    it('(control) the same retry settings do spend retries on a connection the partner resets: the counts above can see one', async () => {
      // a partner that drops every connection before any TLS: a failure worth another attempt
      let connections = 0
      const dropper: TcpServer = createTcpServer((socket) => { connections++; socket.destroy() })
      dropper.listen(0, '127.0.0.1')
      await once(dropper, 'listening')
      try {
        const { port } = dropper.address() as { port: number }
        const setup = await failingPartner('resetting', `https://127.0.0.1:${port}`, pki.ca.cert)
        const res = await call(setup, 'resetting', '/v2/orders/1')
        const body = await res.body.json() as ErrorBody
        assert.equal(res.statusCode, 502)
        assert.equal(body.error.code, 'upstream_error')
        assert.doesNotMatch(body.error.message, /TLS/)
        assert.equal(connections, 3, 'max_attempts 3: three connections')
        assert.equal(sample(await metrics(), 'relaykey_upstream_retries_total{partner="resetting",reason="connection"}'), 2)
      } finally {
        await new Promise<void>((resolve) => dropper.close(() => resolve()))
      }
    })
  })
})

function sample (text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

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

describe('a partner\'s own CA adds to NODE_EXTRA_CA_CERTS, it does not replace it', () => {
  let rk: RelayKeyProcess
  const servers: Array<HttpsMock<VendorRequest>> = []

  after(async () => {
    if (rk !== undefined) assert.equal(await rk.stop(), 0)
    for (const server of servers) await server.close()
  })

  it('a partner with tls.ca still trusts what the process trusts', async () => {
    const pki = makeTestPki()
    const { mkdtempSync, writeFileSync } = await import('node:fs')
    const { join } = await import('node:path')
    const { tmpdir } = await import('node:os')
    const caFile = join(mkdtempSync(join(tmpdir(), 'relaykey-extra-ca-')), 'ca.pem')
    writeFileSync(caFile, pki.ca.cert)
    // the server's certificate comes from the CA the process trusts through NODE_EXTRA_CA_CERTS;
    // the partner names another CA of its own besides
    const server = await startHttpsMock<VendorRequest>({ serverCert: pki.server }, (req) => ({ record: req, answer: { status: 200, json: { ok: true } } }))
    servers.push(server)
    rk = await startRelayKey({ workers: 1, env: { NODE_EXTRA_CA_CERTS: caFile } })
    const setup = await setUpGovernedPartner(rk, { baseUrl: server.url, partner: { tls: { ca: { provider: 'inline', value: pki.otherCa.cert } } } })
    const res = await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': setup.key } })
    assert.equal(res.statusCode, 200, await res.body.text())
    assert.equal(server.received.length, 1)
  })
})
