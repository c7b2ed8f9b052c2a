// Where RelayKey may connect for a partner: never a link-local or cloud metadata address unless
// an operator lists it, and only what RELAYKEY_EGRESS_ALLOW lists when it is set. Checked on the
// address each connection resolves to, so a name saved while it pointed elsewhere (DNS
// rebinding) cannot reach a refused address; base URLs that can be judged by name are refused
// by the admin API already.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { EgressPolicy, parseEgressAllow } from '../../src/http/egress-policy.js'
import { UpstreamPools } from '../../src/http/upstream-pools.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { setUpGovernedPartner, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'

describe('egress policy', () => {
  it('refuses link-local and metadata addresses, in every spelling, unless a listed CIDR covers them', () => {
    const open = new EgressPolicy(null)
    for (const address of ['169.254.169.254', '169.254.0.1', 'fe80::1', 'fd00:ec2::254', '::ffff:169.254.169.254']) {
      assert.match(String(open.refusal('metadata.internal', address)), /link-local or metadata/, address)
    }
    for (const address of ['127.0.0.1', '10.1.2.3', '::1', '93.184.216.34', 'fd00:ec2::253']) assert.equal(open.refusal('h', address), null, address)
    const listed = new EgressPolicy(['169.254.169.254/32'])
    assert.equal(listed.refusal('x', '169.254.169.254'), null)
    assert.match(String(listed.refusal('x', '169.254.169.253')), /link-local/)
  })

  it('with an allow list, reaches only listed names (exact or *.suffix) and CIDRs; a listed name never lifts the metadata block', () => {
    const policy = new EgressPolicy(['api.vendor.com', '*.kyc.example', '10.0.0.0/8', '2001:db8::/32'])
    assert.equal(policy.refusal('api.vendor.com', '93.184.216.34'), null)
    assert.equal(policy.refusal('API.Vendor.com.', '93.184.216.34'), null)
    assert.equal(policy.refusal('eu.kyc.example', '93.184.216.34'), null)
    assert.match(String(policy.refusal('kyc.example.evil.com', '93.184.216.34')), /not in RELAYKEY_EGRESS_ALLOW/)
    assert.equal(policy.refusal('anything', '10.9.9.9'), null)
    assert.equal(policy.refusal('anything', '2001:db8::5'), null)
    assert.match(String(policy.refusal('other.com', '93.184.216.34')), /not in RELAYKEY_EGRESS_ALLOW/)
    // a listed name that resolves to the metadata service (rebinding) is still refused
    assert.match(String(policy.refusal('api.vendor.com', '169.254.169.254')), /metadata/)
    // by host alone: IP literals in full, names only when no CIDR could admit them
    assert.match(String(new EgressPolicy(['api.vendor.com']).hostRefusal('other.com')), /not in RELAYKEY_EGRESS_ALLOW/)
    assert.equal(policy.hostRefusal('other.com'), null)
    assert.match(String(policy.hostRefusal('[fe80::1]')), /link-local/)
    assert.match(String(policy.hostRefusal('192.168.1.1')), /not in RELAYKEY_EGRESS_ALLOW/)
  })

  it('parses RELAYKEY_EGRESS_ALLOW, refusing what is neither a host nor a CIDR', () => {
    assert.deepEqual(parseEgressAllow(' api.vendor.com, 10.0.0.0/8 ,*.x.example'), { entries: ['api.vendor.com', '10.0.0.0/8', '*.x.example'] })
    for (const bad of ['10.0.0.0/33', 'http://api.vendor.com', 'a b', '::1/129', ',']) assert.ok('problem' in parseEgressAllow(bad), bad)
  })

  it('refuses a connection to a metadata address before any packet is sent, whatever was stored', async () => {
    const pools = new UpstreamPools({ egress: new EgressPolicy(null) })
    try {
      const pool = pools.get('http://169.254.169.254', { connectTimeoutMs: 1000 })
      await assert.rejects(pool.request({ method: 'GET', path: '/latest/meta-data/' }), (err: Error & { code?: string }) => err.code === 'RELAYKEY_EGRESS_REFUSED')
    } finally {
      await pools.close()
    }
  })
})

describe('egress policy through a node', () => {
  let partner: MockPartner
  let rk: RelayKeyProcess

  before(async () => {
    partner = await startMockPartner()
    // loopback is not listed: 'localhost' passes the admin API (a CIDR might admit what it
    // resolves to) and is refused when a connection resolves it
    rk = await startRelayKey({ workers: 1, env: { RELAYKEY_EGRESS_ALLOW: '10.0.0.0/8,api.vendor.example' } })
  })
  after(async () => {
    await rk?.stop()
    await partner?.close()
  })

  it('refuses base URLs it can judge at once: 400 naming base_urls.<env>', async () => {
    for (const url of ['http://169.254.169.254/latest', `http://127.0.0.1:${partner.port}`, 'http://[fe80::1]:8080']) {
      const res = await rk.admin('POST', '/admin/partners', { slug: `p${Math.random().toString(36).slice(2, 8)}`, base_urls: { production: url }, auth: { type: 'bearer' } })
      assert.equal(res.status, 400, url)
      assert.match(res.body.error.message, /^base_urls\.production: /, url)
    }
  })

  it('checks the address a name resolves to when connecting: 502 naming the egress policy, nothing sent', async () => {
    const setup = await setUpGovernedPartner(rk, { baseUrl: `http://localhost:${partner.port}` })
    const res = await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': setup.key } })
    const body = await res.body.json() as { error: { code: string; message: string } }
    assert.equal(res.statusCode, 502)
    assert.equal(body.error.code, 'upstream_error')
    assert.match(body.error.message, /egress policy/)
    assert.equal(partner.received.length, 0)
    assert.match(rk.output(), /refused by the egress policy/)
  })
})
