// The process model: a dead worker is replaced (with the workers' node flags), SIGTERM drains
// in-flight requests and exits 0.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRelayKey, setUpGovernedPartner } from '../helpers/relaykey-process.js'
import { startMockPartner } from '../helpers/mock-partner.js'
import { freePort } from '../helpers/ports.js'
import { childPids, commandLine } from '../helpers/process-tree.js'

describe('cluster lifecycle', () => {
  it('replaces a worker that dies and keeps serving', async () => {
    const partner = await startMockPartner()
    const rk = await startRelayKey({ workers: 2 })
    try {
      const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
      const before = childPids(rk.child.pid!)
      assert.equal(before.length, 2)
      process.kill(before[0]!, 'SIGKILL')
      let after: number[] = []
      for (let i = 0; i < 100; i++) {
        await sleep(100)
        after = childPids(rk.child.pid!)
        if (after.length === 2 && !after.includes(before[0]!)) break
      }
      assert.equal(after.length, 2)
      assert.ok(!after.includes(before[0]!))
      // the replacement too: an idle spell must not leave it on V8's slow nextTick path
      for (const pid of [before[1]!, ...after]) {
        // a replacement caught between fork and exec has no command line of its own yet
        let args = commandLine(pid)
        for (let i = 0; i < 40 && !args.includes('--no-memory-reducer'); i++) {
          await sleep(50)
          args = commandLine(pid)
        }
        assert.ok(args.includes('--no-memory-reducer'), `worker ${pid}: ${args.join(' ')}\n${rk.output().slice(-3000)}`)
      }
      await sleep(500) // the new worker starts listening
      for (let i = 0; i < 6; i++) {
        const res = await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': setup.key } })
        assert.equal(res.statusCode, 200)
        await res.body.dump()
      }
      assert.match(rk.output(), /worker exited; replacing it/)
    } finally {
      await rk.stop()
      await partner.close()
    }
  })

  it('SIGTERM lets in-flight requests finish, refuses new connections, exits 0', async () => {
    const partner = await startMockPartner()
    partner.handle((_req, res) => {
      setTimeout(() => res.end('slow but complete'), 1000)
    })
    const rk = await startRelayKey({ workers: 2 })
    const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
    const inFlight = Array.from({ length: 4 }, () => request(`${rk.proxyUrl}/proxy/acme/slow`, { headers: { 'x-relaykey': setup.key } })
      .then(async (res) => ({ status: res.statusCode, body: await res.body.text(), connection: res.headers.connection })))
    await sleep(300)
    const exit = rk.stop('SIGTERM')
    const results = await Promise.all(inFlight)
    // keep-alive clients are told the connection ends with the response, so none sends its next
    // request into a socket about to close
    for (const r of results) assert.deepEqual(r, { status: 200, body: 'slow but complete', connection: 'close' })
    assert.equal(await exit, 0)
    await assert.rejects(request(`${rk.proxyUrl}/health`))
    await partner.close()
  })

  it('SIGTERM answers every request a connection pipelined before the drain, and closes it after the last', async () => {
    const partner = await startMockPartner()
    partner.handle((req, res) => { setTimeout(() => res.end(`answer for ${req.url}`), 500) })
    const rk = await startRelayKey({ workers: 1 })
    const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
    const socket = connect(Number(new URL(rk.proxyUrl).port), '127.0.0.1')
    let received = ''
    socket.on('data', (chunk) => { received += chunk.toString('latin1') })
    const closed = new Promise((resolve) => socket.on('close', resolve))
    const post = (path: string): string => `POST /proxy/acme/${path} HTTP/1.1\r\nHost: x\r\nX-RelayKey: ${setup.key}\r\nContent-Length: 2\r\n\r\nhi`
    socket.write(post('one') + post('two') + post('three'))
    await sleep(100)
    const exit = rk.stop('SIGTERM')
    await closed
    assert.equal(await exit, 0)
    // the partner ran all three: the client must hear about all three
    assert.deepEqual(partner.received.map((r) => r.url), ['/one', '/two', '/three'])
    for (const path of ['one', 'two', 'three']) assert.ok(received.includes(`answer for /${path}`), `no answer for /${path}:\n${received}`)
    const heads = received.split('\r\n\r\n').filter((part) => part.includes('HTTP/1.1 200'))
    assert.equal(heads.length, 3)
    assert.deepEqual(heads.map((h) => /connection: close/i.test(h)), [false, false, true])
    await partner.close()
  })

  it('SIGTERM: a POST whose partner fails during the drain is told Connection: close with its 502', async () => {
    const partner = await startMockPartner()
    partner.handle((req) => { setTimeout(() => req.socket.destroy(), 400) })
    const rk = await startRelayKey({ workers: 1 })
    const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
    await rk.admin('PATCH', '/admin/partners/acme', { retry: { max_attempts: 1 } })
    const socket = connect(Number(new URL(rk.proxyUrl).port), '127.0.0.1')
    let received = ''
    socket.on('data', (chunk) => { received += chunk.toString('latin1') })
    const closed = new Promise((resolve) => socket.on('close', resolve))
    // the body is read by undici (which then clears req.socket) long before the answer
    socket.write(`POST /proxy/acme/p HTTP/1.1\r\nHost: x\r\nX-RelayKey: ${setup.key}\r\nContent-Length: 2\r\n\r\nhi`)
    await sleep(100)
    const exit = rk.stop('SIGTERM')
    await closed
    assert.equal(await exit, 0)
    assert.match(received, /^HTTP\/1\.1 502 /)
    assert.match(received, /\r\nconnection: close\r\n/i)
    await partner.close()
  })

  // The grace period is 10 s here: a stop that reached no worker would take 15 s (grace + 5 s,
  // then SIGKILL), one that did takes well under one.
  for (const delayMs of [0, 150, 400]) {
    it(`SIGTERM ${delayMs} ms after the workers were forked, while they start, exits 0 at once`, async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'relaykey-early-stop-'))
      const child = spawn(process.execPath, [new URL('../../src/cli.js', import.meta.url).pathname, 'serve'], {
        cwd: dataDir,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '',
          RELAYKEY_HOST: '127.0.0.1',
          RELAYKEY_PORT: String(await freePort()),
          RELAYKEY_ADMIN_PORT: String(await freePort()),
          RELAYKEY_WORKERS: '2',
          RELAYKEY_DATA_DIR: dataDir,
          RELAYKEY_SHUTDOWN_GRACE_MS: '10000',
        },
      })
      let output = ''
      child.stdout.on('data', (c: Buffer) => { output += c.toString() })
      child.stderr.on('data', (c: Buffer) => { output += c.toString() })
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
      try {
        for (let i = 0; i < 400 && childPids(child.pid!).length === 0; i++) await sleep(10)
        assert.ok(childPids(child.pid!).length > 0, `no worker was forked:\n${output}`)
        await sleep(delayMs)
        const signalled = performance.now()
        child.kill('SIGTERM')
        assert.equal(await exited, 0, output)
        const took = performance.now() - signalled
        assert.ok(took < 5_000, `took ${Math.round(took)} ms to stop:\n${output}`)
        const stopping = output.indexOf('shutting down')
        assert.ok(stopping !== -1, output)
        assert.equal(output.indexOf('RelayKey ready', stopping), -1, 'not reported ready after stopping')
      } finally {
        child.kill('SIGKILL')
        rmSync(dataDir, { recursive: true, force: true })
      }
    })
  }
})
