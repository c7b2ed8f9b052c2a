// Upstream secrets and raw virtual keys never reach a log, an error body, the admin API or the
// database — in either mode. Each run drives the paths most likely to leak (failed upstreams,
// query-string credentials, refusals, rotation) and then searches everything it can read.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import postgres from 'postgres'
import { distributedEnv, startRelayKey, setUpGovernedPartner, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { freePort } from '../helpers/ports.js'

interface Exercise {
  secrets: string[]
  responses: string[]
}

async function exercise (rk: RelayKeyProcess): Promise<Exercise> {
  const partner = await startMockPartner()
  const headerSecret = `hdr-${randomBytes(12).toString('hex')}`
  const querySecret = `qry-${randomBytes(12).toString('hex')}`
  const responses: string[] = []
  const keep = async (res: Awaited<ReturnType<typeof request>>): Promise<void> => {
    responses.push(JSON.stringify(res.headers) + await res.body.text())
  }
  try {
    const ok = await setUpGovernedPartner(rk, { baseUrl: partner.url, secret: { provider: 'inline', value: headerSecret } })
    const deadPort = await freePort()
    const viaQuery = await setUpGovernedPartner(rk, {
      slug: 'querydead', baseUrl: `http://127.0.0.1:${deadPort}/v1`, auth: { type: 'query', name: 'api_key' },
      secret: { provider: 'inline', value: querySecret },
    })
    await keep(await request(`${rk.proxyUrl}/proxy/acme/x?api_key=client`, { headers: { 'x-relaykey': ok.key } }))
    await keep(await request(`${rk.proxyUrl}/proxy/querydead/x?y=1`, { headers: { 'x-relaykey': viaQuery.key } }))
    await keep(await request(`${rk.proxyUrl}/proxy/acme/%2e%2e/x`, { headers: { 'x-relaykey': ok.key } }))
    await keep(await request(`${rk.proxyUrl}/proxy/nobody/x`, { headers: { 'x-relaykey': ok.key } }))
    await keep(await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': ok.key.slice(0, -2) + 'zz' } }))
    const rotated = await rk.admin('POST', `/admin/keys/${ok.keyId}/rotate`, { grace_seconds: 60 })
    assert.equal(rotated.status, 200)
    await keep(await request(`${rk.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': rotated.body.key } }))
    await rk.admin('POST', `/admin/keys/${viaQuery.keyId}/revoke`)
    await keep(await request(`${rk.proxyUrl}/proxy/querydead/x`, { headers: { 'x-relaykey': viaQuery.key } }))
    // every admin read
    for (const path of ['/admin/partners', '/admin/partners/acme/credentials', '/admin/partners/querydead/credentials',
      '/admin/policies', '/admin/bindings', '/admin/keys', `/admin/keys/${ok.keyId}`]) {
      const res = await rk.admin('GET', path)
      assert.equal(res.status, 200, path)
      responses.push(JSON.stringify(res.body))
    }
    assert.equal(partner.received[0]!.headers['x-app-token'], headerSecret, 'the secret did reach the partner')
    return { secrets: [headerSecret, querySecret, ok.key, viaQuery.key, rotated.body.key], responses }
  } finally {
    await partner.close()
  }
}

function assertAbsent (haystack: string, needles: string[], where: string): void {
  for (const needle of needles) assert.ok(!haystack.includes(needle), `${needle.slice(0, 6)}… found in ${where}`)
}

describe('secrets and raw keys never leak', () => {
  it('embedded mode: logs, responses and the SQLite files', async () => {
    const rk = await startRelayKey({ env: { RELAYKEY_LOG_LEVEL: 'trace' } })
    const { secrets, responses } = await exercise(rk)
    assert.equal(await rk.stop(), 0)
    assertAbsent(rk.output(), secrets, 'the logs')
    assertAbsent(responses.join('\n'), secrets, 'responses')
    for (const file of readdirSync(rk.dataDir)) {
      if (!file.startsWith('relaykey.db')) continue
      const bytes = readFileSync(join(rk.dataDir, file)).toString('latin1')
      assertAbsent(bytes, secrets, file)
    }
  })

  it('distributed mode: logs, responses and every PostgreSQL row', async () => {
    const db = await createTestDatabase()
    const rk = await startRelayKey({
      env: distributedEnv(db.url, { extra: { RELAYKEY_LOG_LEVEL: 'trace' } }),
    })
    try {
      const { secrets, responses } = await exercise(rk)
      assert.equal(await rk.stop(), 0)
      assertAbsent(rk.output(), secrets, 'the logs')
      assertAbsent(responses.join('\n'), secrets, 'responses')
      const sql = postgres(db.url, { max: 1, onnotice: () => {} })
      const tables = await sql<{ name: string }[]>`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'`
      assert.ok(tables.length >= 5)
      let dump = ''
      for (const { name } of tables) {
        const rows = await sql.unsafe(`SELECT t::text AS row FROM ${name} t`)
        dump += rows.map((r) => r.row).join('\n')
      }
      await sql.end()
      assert.ok(dump.includes('querydead'), 'the dump has the data')
      assertAbsent(dump, secrets, 'PostgreSQL')
    } finally {
      await rk.stop()
      await db.drop()
    }
  })
})
