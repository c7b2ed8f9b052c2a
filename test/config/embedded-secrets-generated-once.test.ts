// Embedded mode generates the secrets it was not given once, 0600 under the data dir, prints the
// admin token's path, and keeps them across restarts (so issued keys keep working).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { startRelayKey, setUpGovernedPartner } from '../helpers/relaykey-process.js'
import { startMockPartner } from '../helpers/mock-partner.js'

describe('embedded secrets', () => {
  it('are generated once with mode 0600 and survive a restart', async () => {
    const partner = await startMockPartner()
    const first = await startRelayKey({ workers: 1 })
    const setup = await setUpGovernedPartner(first, { baseUrl: partner.url })
    assert.equal(await first.stop(), 0)
    const dir = first.dataDir
    for (const file of ['admin-token', 'hmac-secret', 'master-key']) {
      assert.equal(statSync(join(dir, file)).mode & 0o777, 0o600, file)
    }
    assert.ok(first.output().includes(join(dir, 'admin-token')), 'the start-up log names the admin token file')
    const token = readFileSync(join(dir, 'admin-token'), 'utf8').trim()

    const second = await startRelayKey({ workers: 1, dataDir: dir })
    try {
      assert.equal(second.adminToken, token)
      // the key issued before the restart still verifies (same pepper) and its inline secret decrypts (same master key)
      const res = await request(`${second.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': setup.key } })
      assert.equal(res.statusCode, 200)
      await res.body.dump()
      assert.equal(partner.received.at(-1)!.headers['x-app-token'], 'upstream-secret-value')
    } finally {
      await second.stop()
      await partner.close()
    }
  })
})
