// What an operator's load test does: autocannon with pipelining against two workers, answers
// large enough that a queued response fills its buffer. A queued response is flushed, and
// drains, when the one before it ends, inside that exchange's undici callback; resuming its
// upstream from there broke undici's parser state and cut answers mid-body. Bounded: 4 s.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { setUpGovernedPartner, startRelayKey, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'

const AUTOCANNON = createRequire(import.meta.url).resolve('autocannon/autocannon.js')

describe('pipelined load', () => {
  let rk: RelayKeyProcess
  let partner: MockPartner
  let setup: GovernedSetup

  before(async () => {
    partner = await startMockPartner({ collectBodies: false })
    const body = JSON.stringify({ ok: true, pad: 'x'.repeat(20_000) })
    partner.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
    rk = await startRelayKey({ workers: 2 })
    setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    await partner.close()
  })

  it('answers every pipelined request whole, and leaves nothing in flight', { timeout: 30_000 }, async () => {
    // its own process, as an operator runs it: in this one it would slow the partner down and
    // hide the race
    const child = spawn(process.execPath, [AUTOCANNON, '--json', '-c', '50', '-p', '10', '-d', '4',
      '-H', `X-RelayKey=${setup.key}`, `${rk.proxyUrl}/proxy/acme/x`], { stdio: ['ignore', 'pipe', 'ignore'] })
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    await once(child, 'exit')
    const result = JSON.parse(stdout) as { requests: { total: number }; non2xx: number }
    assert.ok(result.requests.total > 1000, `only ${result.requests.total} requests`)
    assert.equal(result.non2xx, 0)
    assert.equal((rk.output().match(/upstream failed mid-response/g) ?? []).length, 0, 'answers cut mid-body')
    let inFlight = ''
    for (let i = 0; i < 30; i++) {
      const metrics = await (await fetch(`${rk.adminUrl}/metrics`, { headers: { authorization: `Bearer ${rk.adminToken}` } })).text()
      inFlight = /^relaykey_upstream_in_flight\{partner="acme"\} (\d+)$/m.exec(metrics)?.[1] ?? 'absent'
      if (inFlight === '0') break
      await sleep(100)
    }
    assert.equal(inFlight, '0')
  })
})
