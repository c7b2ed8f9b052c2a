// 100 MiB up and 100 MiB down through RelayKey without buffering: the worker's RSS may not
// grow by more than ~64 MiB while the bytes flow.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { startRelayKey, setUpGovernedPartner, type RelayKeyProcess, type GovernedSetup } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { childPids, rssBytes } from '../helpers/process-tree.js'

const MiB = 1024 * 1024
const SIZE = 100 * MiB
const CHUNK = Buffer.alloc(64 * 1024, 'relaykey-')

function generate (size: number): Readable {
  let sent = 0
  return new Readable({
    read () {
      if (sent >= size) return void this.push(null)
      const n = Math.min(CHUNK.length, size - sent)
      sent += n
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))
    },
  })
}

function expectedDigest (size: number): string {
  const hash = createHash('sha256')
  for (let sent = 0; sent < size; sent += CHUNK.length) hash.update(CHUNK.subarray(0, Math.min(CHUNK.length, size - sent)))
  return hash.digest('hex')
}

/** samples the worker's RSS every 20 ms while `work` runs; returns the peak growth */
async function peakGrowth (pid: number, work: () => Promise<void>): Promise<number> {
  const baseline = rssBytes(pid)
  let peak = baseline
  const timer = setInterval(() => { peak = Math.max(peak, rssBytes(pid)) }, 20)
  try {
    await work()
  } finally {
    clearInterval(timer)
  }
  return Math.max(peak, rssBytes(pid)) - baseline
}

describe('streaming with bounded memory', () => {
  let rk: RelayKeyProcess
  let partner: MockPartner
  let setup: GovernedSetup
  let worker: number

  before(async () => {
    partner = await startMockPartner({ collectBodies: false })
    rk = await startRelayKey({ workers: 1 })
    setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
    const workers = childPids(rk.child.pid!)
    assert.equal(workers.length, 1)
    worker = workers[0]!
    // warm up the path (connections, JIT) so the baseline is not the cold process
    const res = await request(`${rk.proxyUrl}/proxy/acme/warm`, { headers: { 'x-relaykey': setup.key } })
    await res.body.dump()
    // and let its audit event reach the writer thread, whose first insert sets up SQLite's
    // page cache and statements: part of a warm process, not of the bytes streamed below
    await sleep(500)
  })
  after(async () => {
    await rk.stop()
    await partner.close()
  })

  it('uploads 100 MiB, every byte arriving, RSS growth under 64 MiB', async (t) => {
    let received = 0
    const hash = createHash('sha256')
    partner.server.removeAllListeners('request')
    partner.server.on('request', (req, res) => {
      req.on('data', (c: Buffer) => { received += c.length; hash.update(c) })
      req.on('end', () => res.end(String(received)))
    })
    const growth = await peakGrowth(worker, async () => {
      const res = await request(`${rk.proxyUrl}/proxy/acme/upload`, {
        method: 'PUT', headers: { 'x-relaykey': setup.key, 'content-length': String(SIZE) }, body: generate(SIZE),
      })
      assert.equal(res.statusCode, 200)
      assert.equal(await res.body.text(), String(SIZE))
    })
    assert.equal(received, SIZE)
    assert.equal(hash.digest('hex'), expectedDigest(SIZE))
    t.diagnostic(`worker RSS grew by ${(growth / MiB).toFixed(1)} MiB`)
    assert.ok(growth < 64 * MiB, `worker RSS grew by ${(growth / MiB).toFixed(1)} MiB`)
  })

  it('downloads 100 MiB to a slow reader, RSS growth under 64 MiB', async (t) => {
    partner.server.removeAllListeners('request')
    partner.server.on('request', (req, res) => {
      req.resume()
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) })
      generate(SIZE).pipe(res)
    })
    const growth = await peakGrowth(worker, async () => {
      const res = await request(`${rk.proxyUrl}/proxy/acme/download`, { headers: { 'x-relaykey': setup.key } })
      assert.equal(res.statusCode, 200)
      const hash = createHash('sha256')
      let got = 0
      for await (const chunk of res.body) {
        hash.update(chunk as Buffer)
        got += (chunk as Buffer).length
        // a reader slower than the upstream: backpressure must hold the bytes upstream
        if (got % (8 * MiB) < 65536) await new Promise((resolve) => setTimeout(resolve, 5))
      }
      assert.equal(got, SIZE)
      assert.equal(hash.digest('hex'), expectedDigest(SIZE))
    })
    t.diagnostic(`worker RSS grew by ${(growth / MiB).toFixed(1)} MiB`)
    assert.ok(growth < 64 * MiB, `worker RSS grew by ${(growth / MiB).toFixed(1)} MiB`)
  })
})
