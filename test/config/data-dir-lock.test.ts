// One embedded node per data directory: a second process on the same RELAYKEY_DATA_DIR refuses
// to start and names the holder's pid; after the holder is killed with SIGKILL, its stale lock
// does not stop the next start.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { startRelayKey } from '../helpers/relaykey-process.js'
import { setTimeout as sleep } from 'node:timers/promises'

describe('the embedded data directory lock', () => {
  it('refuses a second node on the same data dir, naming the holder; a killed holder\'s lock is taken over', async () => {
    const first = await startRelayKey({ workers: 1 })
    try {
      await assert.rejects(startRelayKey({ workers: 1, dataDir: first.dataDir, timeoutMs: 10_000 }),
        new RegExp(`relaykey exited with 1:[\\s\\S]*is in use by another RelayKey process \\(pid ${first.child.pid}\\)`))
      // the first still serves
      assert.equal((await first.admin('GET', '/admin/partners')).status, 200)
    } finally {
      await first.stop('SIGKILL')
    }
    await sleep(300) // its worker goes with it (disconnect)
    const next = await startRelayKey({ workers: 1, dataDir: first.dataDir })
    assert.equal((await next.admin('GET', '/admin/partners')).status, 200)
    assert.equal(await next.stop(), 0)
  })
})
