// HTTP/1.1 pipelining: a response queued behind an earlier one on the same connection has no
// socket of its own until its turn, so neither its 'close' nor destroying it tells anything.
// When the client leaves or stops reading, every exchange on the connection must still end:
// audited, its concurrency slot freed, its upstream connection let go.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import type { ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { setUpGovernedPartner, startRelayKey, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'

// far more than socket buffers hold: an answer is only ever finished if RelayKey reads it all
const BIG = 32 * 1024 * 1024

describe('pipelined requests', () => {
  let rk: RelayKeyProcess
  let partner: MockPartner
  let setup: GovernedSetup
  /** partner answers cut off before they were all sent (RelayKey let go of the connection) */
  let cutOff = 0

  before(async () => {
    partner = await startMockPartner()
    partner.handle((req, res) => {
      if (req.url!.includes('/slow')) {
        setTimeout(() => res.end('slow'), 500)
        return
      }
      if (req.url!.includes('/lines')) {
        // a stream the client reads as it comes, for longer than the idle timeout (1 s)
        res.writeHead(200, { 'content-type': 'text/plain' })
        let line = 0
        const timer = setInterval(() => {
          res.write(`line ${line}\n`)
          if (++line === 20) {
            clearInterval(timer)
            res.end('done\n')
          }
        }, 100)
        return
      }
      if (req.url!.includes('/medium')) {
        res.end('m'.repeat(256 * 1024))
        return
      }
      if (req.url!.includes('/breaks')) {
        res.writeHead(200, { 'content-length': '1000' })
        res.write('x'.repeat(100))
        setTimeout(() => res.destroy(), 200)
        return
      }
      res.on('close', () => { if (!res.writableFinished) cutOff++ })
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG) })
      writeBig(res, BIG)
    })
    rk = await startRelayKey({ workers: 1, env: { RELAYKEY_CLIENT_IDLE_TIMEOUT_MS: '1000' } })
    setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    await partner.close()
  })

  const pipeline = (paths: string[]): string =>
    paths.map((p) => `GET /proxy/acme${p} HTTP/1.1\r\nHost: relaykey.local\r\nX-RelayKey: ${setup.key}\r\n\r\n`).join('')

  it('ends every exchange when the client leaves with a request still queued', { timeout: 15_000 }, async () => {
    const before = await auditCount()
    cutOff = 0
    const socket = connect(Number(new URL(rk.proxyUrl).port), '127.0.0.1')
    socket.on('error', () => {})
    // the POST's body is read (and its request object let go by undici) before the client leaves
    socket.write(pipeline(['/slow', '/big']) +
      `POST /proxy/acme/big HTTP/1.1\r\nHost: relaykey.local\r\nX-RelayKey: ${setup.key}\r\nContent-Length: 5\r\n\r\nhello`)
    await sleep(300)
    socket.destroy()
    await settled(before + 3)
    assert.equal(cutOff, 2, 'the queued requests\' upstream answers were let go')
  })

  it('cuts off a client that pipelines and never reads, and ends every exchange on its connection', { timeout: 15_000 }, async () => {
    const before = await auditCount()
    cutOff = 0
    const socket = connect(Number(new URL(rk.proxyUrl).port), '127.0.0.1')
    socket.on('error', () => {})
    socket.pause()
    socket.write(pipeline(['/big', '/big']))
    await settled(before + 2)
    assert.equal(cutOff, 2)
    // reading again, the client finds its connection closed
    const closed = new Promise((resolve) => socket.on('close', resolve))
    socket.resume()
    await closed
  })

  it('closes the connection when garbage follows a request still being answered, rather than answer 400 in its place', { timeout: 15_000 }, async () => {
    const socket = connect(Number(new URL(rk.proxyUrl).port), '127.0.0.1')
    let received = ''
    socket.on('data', (chunk) => { received += chunk.toString('latin1') })
    socket.on('error', () => {})
    socket.write(pipeline(['/slow']) + 'GARBAGE\x01 / HTTP/1.1\r\n\r\n')
    await new Promise((resolve) => socket.on('close', resolve))
    assert.doesNotMatch(received, /^HTTP\/1\.1 400/, 'a 400 would read as the answer to the first request')
  })

  it('lets an answer queued behind a slow stream wait its turn, without cutting the stream the client is reading', { timeout: 15_000 }, async () => {
    for (const behind of ['/medium', '/breaks']) {
      const answers = await readAll(pipeline(['/lines', behind]))
      assert.match(answers, /line 19\r?\n(.|\r|\n)*done/, `${behind}: the stream in front was cut: ${answers.slice(-200)}`)
      if (behind === '/medium') assert.ok(answers.includes('m'.repeat(256 * 1024)), 'the queued answer arrived whole')
    }
  })

  it('answers a request that said Connection: close, ignoring bytes the client sent after it', { timeout: 15_000 }, async () => {
    const answers = await readAll(pipeline(['/slow']).replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n') + pipeline(['/slow']))
    assert.match(answers, /^HTTP\/1\.1 200 OK\r\n/)
    assert.match(answers, /slow$/)
  })

  /** writes `requests` on a new connection and reads until the server closes it */
  async function readAll (requests: string): Promise<string> {
    const socket = connect(Number(new URL(rk.proxyUrl).port), '127.0.0.1')
    let received = ''
    socket.on('data', (chunk) => { received += chunk.toString('latin1') })
    socket.on('error', () => {})
    socket.write(requests)
    // a kept-alive connection stays open: give up waiting once nothing has come for 2 s
    let last = received.length
    for (;;) {
      const closed = await Promise.race([new Promise((resolve) => socket.once('close', () => resolve(true))), sleep(2000).then(() => false)])
      if (closed || received.length === last) break
      last = received.length
    }
    socket.destroy()
    return received
  }

  async function auditCount (): Promise<number> {
    const page = await rk.admin('GET', `/admin/audit?key_id=${setup.keyId}&limit=1000`)
    return page.body.events.length
  }

  /** `events` audit events for the key and no request holding a concurrency slot, within 6 s */
  async function settled (events: number): Promise<void> {
    let seen = 0
    let inFlight = ''
    for (let i = 0; i < 60; i++) {
      seen = await auditCount()
      const metrics = await (await fetch(`${rk.adminUrl}/metrics`, { headers: { authorization: `Bearer ${rk.adminToken}` } })).text()
      inFlight = /^relaykey_upstream_in_flight\{partner="acme"\} (\d+)$/m.exec(metrics)?.[1] ?? 'absent'
      if (seen === events && inFlight === '0') return
      await sleep(100)
    }
    assert.fail(`audit events ${seen} (want ${events}), requests in flight ${inFlight} (want 0)`)
  }
})

function writeBig (res: ServerResponse, total: number): void {
  const chunk = Buffer.alloc(64 * 1024, 0x62)
  let sent = 0
  const more = (): void => {
    while (sent < total) {
      sent += chunk.length
      if (!res.write(chunk)) {
        res.once('drain', more)
        return
      }
    }
    res.end()
  }
  more()
}
