// Misconfiguration is caught at start and named at request time: a credential whose env secret
// is unset, and a bound partner with no credential for the environment its keys are in, are each
// logged once at error level (at start, and after the change that caused them), listed by the
// admin port's GET /ready, counted in relaykey_misconfigurations, and their requests are answered
// 502 partner_misconfigured naming the partner and environment — not 403.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { setUpGovernedPartner, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'

interface LogLine { level: number; msg: string; partner?: string; credential?: string | null; environment?: string | null; reason?: string }

function errorLines (rk: RelayKeyProcess, msgStart: string): LogLine[] {
  return rk.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.level === 50 && l.msg.startsWith(msgStart))
}

async function readiness (rk: RelayKeyProcess): Promise<{ status: number; body: any }> {
  return await rk.admin('GET', '/ready')
}

describe('misconfiguration caught at start and named at request time', { timeout: 60_000 }, () => {
  let partner: MockPartner
  let rk: RelayKeyProcess
  let unsetKey: string
  let noCredentialKey: string
  let dataDir: string

  before(async () => {
    partner = await startMockPartner()
    // first run: configure through the admin API, then stop, so the second run finds it at start
    const first = await startRelayKey({ workers: 1 })
    dataDir = first.dataDir
    unsetKey = (await setUpGovernedPartner(first, { slug: 'kyc', baseUrl: partner.url, secret: { provider: 'env', ref: 'KYC_VENDOR_KEY_NOT_SET' } })).key
    const bare = await first.admin('POST', '/admin/partners', { slug: 'pricing', base_urls: { production: partner.url }, auth: { type: 'bearer' } })
    assert.equal(bare.status, 201)
    const policy = await first.admin('POST', '/admin/policies', { name: 'pricing-policy' })
    assert.equal((await first.admin('POST', '/admin/bindings', { policy: policy.body.id, partner: 'pricing' })).status, 201)
    noCredentialKey = (await first.admin('POST', '/admin/keys', { name: 'pricing key', policy: policy.body.id, environment: 'production' })).body.key
    assert.equal(await first.stop(), 0)
    rk = await startRelayKey({ workers: 1, dataDir })
  })

  after(async () => {
    await rk?.stop()
    await partner?.close()
  })

  it('logs each problem once at error level at start, naming partner, credential and reason', async () => {
    const unusable = errorLines(rk, 'credential unusable')
    assert.equal(unusable.length, 1, rk.output())
    assert.equal(unusable[0]!.partner, 'kyc')
    assert.equal(unusable[0]!.credential, 'main')
    assert.match(unusable[0]!.reason!, /environment variable KYC_VENDOR_KEY_NOT_SET is not set/)
    const partners = errorLines(rk, 'partner misconfigured')
    assert.deepEqual(partners.map((l) => [l.partner, l.environment]).sort(), [['kyc', 'production'], ['pricing', 'production']])
    assert.match(partners.find((l) => l.partner === 'pricing')!.reason!, /no credential for environment production/)
    assert.match(partners.find((l) => l.partner === 'kyc')!.reason!, /none of its 1 credential for environment production is usable/)
    // they were there before the first request: "RelayKey ready" comes after them
    const output = rk.output()
    assert.ok(output.indexOf('credential unusable') < output.indexOf('RelayKey ready'))
  })

  it('GET /ready on the admin port lists them (degraded), and the metric counts them', async () => {
    const { status, body } = await readiness(rk)
    assert.equal(status, 200)
    assert.equal(body.status, 'degraded')
    assert.deepEqual(body.stores, { control: 'ok', limits: 'ok' })
    const kinds = body.misconfigurations.map((m: any) => [m.partner, m.environment, m.credential?.name ?? null]).sort()
    assert.deepEqual(kinds, [['kyc', 'production', null], ['kyc', 'production', 'main'], ['pricing', 'production', null]])
    const metrics = await fetch(`${rk.adminUrl}/metrics`, { headers: { authorization: `Bearer ${rk.adminToken}` } }).then((r) => r.text())
    assert.match(metrics, /^relaykey_misconfigurations\{partner="kyc",kind="credential"\} 1$/m)
    assert.match(metrics, /^relaykey_misconfigurations\{partner="kyc",kind="partner"\} 1$/m)
    assert.match(metrics, /^relaykey_misconfigurations\{partner="pricing",kind="partner"\} 1$/m)
    // nothing leaks through the proxy port's own probe
    const probe = await fetch(`${rk.proxyUrl}/ready`)
    assert.deepEqual(await probe.json(), { status: 'ready' })
  })

  it('answers their requests 502 partner_misconfigured naming partner and environment', async () => {
    for (const [key, slug] of [[unsetKey, 'kyc'], [noCredentialKey, 'pricing']] as const) {
      const res = await fetch(`${rk.proxyUrl}/proxy/${slug}/anything`, { headers: { 'x-relaykey': key } })
      const body = await res.json() as any
      assert.equal(res.status, 502, JSON.stringify(body))
      assert.equal(body.error.code, 'partner_misconfigured')
      assert.match(body.error.message, new RegExp(`partner ${slug} cannot be called in environment production`))
      assert.ok(!JSON.stringify(body).includes('KYC_VENDOR_KEY_NOT_SET'), 'the client learns which variable is unset')
    }
    assert.equal(partner.received.length, 0)
  })

  it('a change that fixes one is seen within a second: logged as resolved, gone from /ready; a new one is logged once', async () => {
    const pricing = (await rk.admin('POST', '/admin/partners/pricing/credentials', { name: 'main', environment: 'production', secret: { provider: 'inline', value: 'pricing-secret-value' } }))
    assert.equal(pricing.status, 201)
    let remaining: any[] = []
    for (let i = 0; i < 40; i++) {
      remaining = (await readiness(rk)).body.misconfigurations
      if (!remaining.some((m: any) => m.partner === 'pricing')) break
      await sleep(50)
    }
    assert.ok(!remaining.some((m: any) => m.partner === 'pricing'), JSON.stringify(remaining))
    assert.match(rk.output(), /"partner":"pricing".*"msg":"configuration problem resolved"/)
    const res = await fetch(`${rk.proxyUrl}/proxy/pricing/quote`, { headers: { 'x-relaykey': noCredentialKey } })
    assert.equal(res.status, 200)
    // a new problem from a change: a second credential whose file secret cannot be read
    await rk.admin('POST', '/admin/partners/pricing/credentials', { name: 'second', environment: 'production', secret: { provider: 'env', ref: 'PRICING_SECOND_NOT_SET' } })
    for (let i = 0; i < 40 && errorLines(rk, 'credential unusable').length < 2; i++) await sleep(50)
    await sleep(300) // a second check would log it again, if logging were not once
    assert.equal(errorLines(rk, 'credential unusable').filter((l) => l.credential === 'second').length, 1)
    assert.equal(errorLines(rk, 'credential unusable').filter((l) => l.credential === 'main').length, 1)
  })
})
