// The client-side timeouts cut clients that stall, not clients that wait: a client waiting on a
// slow partner is bounded by the partner's timeouts only, and request_ms starts once a small
// body has been read, so a slow upload does not eat the partner's deadline.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { call, partnerWith, uniqueSlug } from './reliability-harness.js'

describe('client timeouts spare the wait for the partner', () => {
  let rk: RelayKeyProcess
  let p: MockPartner
  before(async () => {
    rk = await startRelayKey({ workers: 1, env: { RELAYKEY_CLIENT_IDLE_TIMEOUT_MS: '400' } })
    p = await startMockPartner()
  })
  after(async () => {
    await rk.stop()
    await p.close()
  })

  it('a client waiting longer than the idle timeout for a slow partner gets its answer', async () => {
    p.handle((_req, res) => { setTimeout(() => res.end('worth the wait'), 1200) })
    const s = uniqueSlug('slow')
    const setup = await partnerWith(rk, p.url, s, { timeouts: { request_ms: 3000 } })
    const seen = await call(rk, setup.key, `${s}/report`)
    assert.equal(seen.status, 200)
    assert.equal(seen.text, 'worth the wait')
  })

  it('request_ms starts after a buffered body was read: a slow small upload still gets the partner\'s whole deadline', async () => {
    p.handle((_req, res) => { setTimeout(() => res.end('stored'), 300) })
    const s = uniqueSlug('upload')
    const setup = await partnerWith(rk, p.url, s, { timeouts: { request_ms: 800 }, retry: { max_attempts: 2 } })
    const socket = connect(Number(new URL(rk.proxyUrl).port), '127.0.0.1')
    await once(socket, 'connect')
    let answer = ''
    socket.on('data', (chunk: Buffer) => { answer += chunk.toString() })
    const body = 'x'.repeat(20)
    socket.write(`PUT /proxy/${s}/doc HTTP/1.1\r\nHost: relaykey\r\nX-RelayKey: ${setup.key}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 10)}`)
    await sleep(1000) // longer than request_ms
    socket.write(body.slice(10))
    await once(socket, 'close')
    assert.match(answer, /^HTTP\/1\.1 200 /)
    assert.match(answer, /stored$/)
    assert.equal(p.received.at(-1)!.body.toString(), body)
  })
})
