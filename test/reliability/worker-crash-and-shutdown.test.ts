// Losing a worker costs only the requests it held: the other worker's in-flight requests finish,
// a replacement is forked and serves. SIGTERM under load drains: in-flight requests and a long
// download finish whole within the grace period, then new connections are refused and the
// primary exits 0; past the grace, what is still open is cut and the exit is still clean.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { Client, request } from 'undici'
import { startRelayKey, setUpGovernedPartner, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { childPids } from '../helpers/process-tree.js'

const CONCURRENT = 20
const SLOW_MS = 1500

/** what the partner answers to /slow/{i}: distinct per request, big enough to span many chunks */
function slowBody (i: number): string {
  return `slow answer ${i};`.repeat(1000)
}

type Outcome = { status: number; body: Buffer } | { error: string }

/** one request on a connection of its own, so that each lands on whichever worker accepts it */
async function onOwnConnection (origin: string, path: string, key: string): Promise<Outcome> {
  const client = new Client(origin, { headersTimeout: 10_000, bodyTimeout: 10_000 })
  try {
    const res = await client.request({ method: 'GET', path, headers: { 'x-relaykey': key } })
    const chunks: Buffer[] = []
    for await (const chunk of res.body) chunks.push(chunk as Buffer)
    return { status: res.statusCode, body: Buffer.concat(chunks) }
  } catch (err) {
    return { error: (err as { code?: string }).code ?? String(err) }
  } finally {
    client.destroy()
  }
}

/** how a client sees a connection that its server process dropped */
const CONNECTION_ERRORS = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'])

/** until `done()` or `ms` have passed; false on timeout */
async function waitFor (done: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!done()) {
    if (Date.now() > deadline) return false
    await sleep(25)
  }
  return true
}

async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms) })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

/** /slow/{i} after SLOW_MS; /download streams `download` in 100 KB chunks every 100 ms; else at once */
function answerWith (partner: MockPartner, download: Buffer): { downloadStarted: () => boolean } {
  let started = false
  partner.handle((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url!
    if (url.startsWith('/slow/')) {
      const body = slowBody(Number(url.slice('/slow/'.length)))
      setTimeout(() => {
        if (res.destroyed) return
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
        res.end(body)
      }, SLOW_MS)
      return
    }
    if (url === '/download') {
      started = true
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(download.length) })
      let offset = 0
      const next = (): void => {
        if (res.destroyed) return
        const end = Math.min(offset + 100 * 1024, download.length)
        res.write(download.subarray(offset, end))
        offset = end
        if (offset === download.length) res.end()
        else setTimeout(next, 100)
      }
      next()
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '4' })
    res.end('fast')
  })
  return { downloadStarted: () => started }
}

/** running (a zombie waiting to be reaped counts as gone) */
function isAlive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

function sha256 (bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}

async function stopQuietly (rk: RelayKeyProcess | undefined, partner: MockPartner | undefined): Promise<void> {
  if (rk !== undefined && rk.child.exitCode === null) await rk.stop('SIGKILL')
  await partner?.close()
}

describe('worker crash and shutdown', () => {
  it('a SIGKILLed worker loses only its own requests; the other worker finishes its own and a replacement serves', { timeout: 15_000 }, async (t) => {
    const partner = await startMockPartner()
    answerWith(partner, Buffer.alloc(0))
    let rk: RelayKeyProcess | undefined
    try {
      rk = await startRelayKey({ workers: 2 })
      const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
      const workers = childPids(rk.child.pid!)
      assert.equal(workers.length, 2)

      const inFlight = Array.from({ length: CONCURRENT }, (_, i) => onOwnConnection(rk!.proxyUrl, `/proxy/acme/slow/${i}`, setup.key))
      assert.ok(await waitFor(() => partner.received.length >= CONCURRENT, 5000), `only ${partner.received.length} requests reached the partner`)
      const victim = workers[0]!
      process.kill(victim, 'SIGKILL')

      const outcomes = await withTimeout(Promise.all(inFlight), 10_000, 'the in-flight requests')
      let succeeded = 0
      let dropped = 0
      outcomes.forEach((outcome, i) => {
        if ('error' in outcome) {
          assert.ok(CONNECTION_ERRORS.has(outcome.error), `request ${i} failed with ${outcome.error}, not a dropped connection`)
          dropped++
          return
        }
        // never a RelayKey 5xx (or any other answer) in place of the partner's
        assert.equal(outcome.status, 200, `request ${i}: ${outcome.status} ${outcome.body.toString().slice(0, 200)}`)
        assert.equal(outcome.body.toString(), slowBody(i), `request ${i} got a truncated or wrong body`)
        succeeded++
      })
      assert.equal(succeeded + dropped, CONCURRENT)
      t.diagnostic(`${succeeded} finished on the surviving worker, ${dropped} dropped with the killed one`)
      assert.ok(succeeded >= 1, 'every request failed: the surviving worker\'s requests were dropped too')

      // the primary forks a replacement (after a short crash back-off)
      let now: number[] = []
      assert.ok(await waitFor(() => {
        now = childPids(rk!.child.pid!)
        return now.length === 2 && !now.includes(victim)
      }, 8000), `no replacement worker: children are ${JSON.stringify(now)}`)
      assert.match(rk.output(), /worker exited; replacing it/)
      // new connections are served, whichever worker takes them
      for (let i = 0; i < 6; i++) {
        const outcome = await onOwnConnection(rk.proxyUrl, '/proxy/acme/fast', setup.key)
        assert.deepEqual(outcome, { status: 200, body: Buffer.from('fast') }, `request ${i} after the replacement`)
      }
    } finally {
      await stopQuietly(rk, partner)
    }
  })

  it('SIGTERM under load: in-flight requests and a long download finish whole, then connections are refused and the exit is 0', { timeout: 15_000 }, async () => {
    const partner = await startMockPartner()
    const download = randomBytes(2 * 1024 * 1024) // 21 chunks over about 2 s
    const { downloadStarted } = answerWith(partner, download)
    let rk: RelayKeyProcess | undefined
    try {
      rk = await startRelayKey({ workers: 2 })
      const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })

      const inFlight = Array.from({ length: CONCURRENT }, (_, i) => onOwnConnection(rk!.proxyUrl, `/proxy/acme/slow/${i}`, setup.key))
      const downloaded = onOwnConnection(rk.proxyUrl, '/proxy/acme/download', setup.key)
      assert.ok(await waitFor(() => partner.received.length >= CONCURRENT + 1 && downloadStarted(), 5000),
        `only ${partner.received.length} requests reached the partner`)

      const workers = childPids(rk.child.pid!)
      const exited = rk.stop('SIGTERM')
      // the listener closes at once: new connections are refused while the in-flight ones drain
      let refused = false
      for (let i = 0; i < 40 && !refused; i++) {
        const probe = await onOwnConnection(rk.proxyUrl, '/health', setup.key)
        refused = 'error' in probe && probe.error === 'ECONNREFUSED'
        if (!refused) await sleep(25)
      }
      assert.ok(refused, 'new connections were still accepted 1 s into the drain')
      const outcomes = await withTimeout(Promise.all(inFlight), 10_000, 'the in-flight requests')
      outcomes.forEach((outcome, i) => {
        assert.ok(!('error' in outcome), `request ${i} was dropped during the drain: ${JSON.stringify(outcome)}`)
        assert.equal(outcome.status, 200, `request ${i}`)
        assert.equal(outcome.body.toString(), slowBody(i), `request ${i} got a truncated or wrong body`)
      })
      const file = await withTimeout(downloaded, 10_000, 'the download')
      assert.ok(!('error' in file), `the download was cut during the drain: ${JSON.stringify(file)}`)
      assert.equal(file.status, 200)
      assert.equal(file.body.length, download.length)
      assert.equal(sha256(file.body), sha256(download))

      assert.equal(await withTimeout(exited, 10_000, 'the primary\'s exit'), 0, rk.output())
      for (const pid of workers) assert.ok(!isAlive(pid), `worker ${pid} outlived the primary`)
      await assert.rejects(request(`${rk.proxyUrl}/health`), (err: { code?: string }) => err.code === 'ECONNREFUSED')
    } finally {
      await stopQuietly(rk, partner)
    }
  })

  it('SIGTERM with a download longer than the grace period: the download is cut, the exit is still 0 and prompt', { timeout: 15_000 }, async (t) => {
    const GRACE_MS = 1000
    const partner = await startMockPartner()
    const download = randomBytes(3 * 1024 * 1024) // about 3 s at 100 KB per 100 ms
    const { downloadStarted } = answerWith(partner, download)
    let rk: RelayKeyProcess | undefined
    try {
      rk = await startRelayKey({ workers: 2, env: { RELAYKEY_SHUTDOWN_GRACE_MS: String(GRACE_MS) } })
      const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
      const downloaded = onOwnConnection(rk.proxyUrl, '/proxy/acme/download', setup.key)
      assert.ok(await waitFor(downloadStarted, 5000), 'the download never reached the partner')

      const workers = childPids(rk.child.pid!)
      const signalledAt = Date.now()
      const code = await withTimeout(rk.stop('SIGTERM'), GRACE_MS + 6000, 'the primary\'s exit')
      const exitAfter = Date.now() - signalledAt
      assert.equal(code, 0, rk.output())
      t.diagnostic(`exited ${exitAfter} ms after SIGTERM`)
      // the worker cuts what is left at the grace; the primary's own SIGKILL backstop is grace + 5 s
      assert.ok(exitAfter < GRACE_MS + 4000, `exit took ${exitAfter} ms with a ${GRACE_MS} ms grace`)

      for (const pid of workers) assert.ok(!isAlive(pid), `worker ${pid} outlived the primary`)

      const file = await withTimeout(downloaded, 5000, 'the download')
      if ('error' in file) {
        assert.ok(CONNECTION_ERRORS.has(file.error), `the download failed with ${file.error}, not a cut connection`)
      } else {
        assert.equal(file.status, 200)
        assert.ok(file.body.length < download.length, 'a download longer than the grace period arrived whole')
      }
      await assert.rejects(request(`${rk.proxyUrl}/health`), (err: { code?: string }) => err.code === 'ECONNREFUSED')
    } finally {
      await stopQuietly(rk, partner)
    }
  })
})
