// A node started with another RELAYKEY_HMAC_SECRET or RELAYKEY_MASTER_KEY than the deployment's
// stores were written with refuses to start with one line saying which, in embedded and in
// distributed mode (where a second node joins with the wrong value); the stores keep keyed
// fingerprints, never the secrets.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { distributedEnv, setUpGovernedPartner, startRelayKey } from '../helpers/relaykey-process.js'

async function refusal (options: Parameters<typeof startRelayKey>[0]): Promise<string> {
  try {
    const rk = await startRelayKey(options)
    await rk.stop('SIGKILL')
  } catch (err) {
    return (err as Error).message
  }
  assert.fail('the node started')
}

describe('secret fingerprints: another pepper or master key refuses to start', { timeout: 60_000 }, () => {
  it('embedded: an RELAYKEY_HMAC_SECRET or RELAYKEY_MASTER_KEY other than the data dir\'s', async () => {
    const first = await startRelayKey({ workers: 1 })
    await setUpGovernedPartner(first, { baseUrl: 'http://127.0.0.1:9' })
    assert.equal(await first.stop(), 0)
    const dataDir = first.dataDir
    const hmac = await refusal({ workers: 1, dataDir, env: { RELAYKEY_HMAC_SECRET: randomBytes(32).toString('hex') } })
    assert.match(hmac, /relaykey: RELAYKEY_HMAC_SECRET is not the one this deployment's virtual keys were issued with \(fingerprint [0-9a-f]{32} stored, [0-9a-f]{32} here\)/)
    const master = await refusal({ workers: 1, dataDir, env: { RELAYKEY_MASTER_KEY: randomBytes(32).toString('hex') } })
    assert.match(master, /relaykey: RELAYKEY_MASTER_KEY is not the one this deployment's inline secrets were sealed with/)
    // the stored values are fingerprints: neither secret's bytes are in the file
    const file = readFileSync(join(dataDir, 'relaykey.db'))
    for (const name of ['hmac-secret', 'master-key']) {
      const secret = readFileSync(join(dataDir, name), 'utf8').trim()
      assert.equal(file.includes(Buffer.from(secret)), false, `${name} is stored in the database`)
    }
    // the right values still start
    const again = await startRelayKey({ workers: 1, dataDir })
    assert.equal(await again.stop(), 0)
  })

  it('embedded: with nothing sealed yet, another master key is no reason to refuse', async () => {
    const first = await startRelayKey({ workers: 1 })
    await setUpGovernedPartner(first, { baseUrl: 'http://127.0.0.1:9', secret: { provider: 'env', ref: 'NOT_SEALED' } })
    assert.equal(await first.stop(), 0)
    const again = await startRelayKey({ workers: 1, dataDir: first.dataDir, env: { RELAYKEY_MASTER_KEY: randomBytes(32).toString('hex') } })
    assert.equal(await again.stop(), 0)
  })

  describe('distributed', () => {
    let db: TestDatabase
    before(async () => { db = await createTestDatabase() })
    after(async () => { await db.drop() })

    it('a second node with another pepper, or another master key, is refused; one with the same values joins', async () => {
      const env = distributedEnv(db.url)
      const first = await startRelayKey({ workers: 1, env })
      try {
        await setUpGovernedPartner(first, { baseUrl: 'http://127.0.0.1:9' })
        assert.match(await refusal({ workers: 1, env: { ...env, RELAYKEY_HMAC_SECRET: randomBytes(32).toString('hex') } }), /RELAYKEY_HMAC_SECRET is not the one/)
        assert.match(await refusal({ workers: 1, env: { ...env, RELAYKEY_MASTER_KEY: randomBytes(32).toString('hex') } }), /RELAYKEY_MASTER_KEY is not the one/)
        const second = await startRelayKey({ workers: 1, env })
        assert.equal(await second.stop(), 0)
      } finally {
        await first.stop()
      }
      const sql = postgres(db.url, { max: 1, onnotice: () => {} })
      const rows = await sql`SELECT name, fingerprint FROM secret_fingerprints ORDER BY name`
      await sql.end()
      assert.deepEqual(rows.map((r) => r.name), ['hmac_secret', 'master_key'])
      for (const row of rows) assert.match(row.fingerprint, /^[0-9a-f]{32}$/)
    })
  })
})
