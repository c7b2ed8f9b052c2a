// The whole product, not just the pipeline: PostgreSQL goes down while RelayKey keeps serving
// (cached keys), the audit events wait in the local audit log, RelayKey is killed with SIGKILL (no flush, no
// goodbye), PostgreSQL comes back, RelayKey restarts on the same data dir — and every request
// is in audit_events exactly once.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import postgres from 'postgres'
import { request } from 'undici'
import { distributedEnv, setUpGovernedPartner, startRelayKey } from '../helpers/relaykey-process.js'
import { startMockPartner } from '../helpers/mock-partner.js'
import { startThrowawayPostgres } from '../helpers/throwaway-postgres.js'
import { childPids } from '../helpers/process-tree.js'

const REQUESTS = 300

describe('audit across a PostgreSQL outage and a kill -9', () => {
  it('ships the logged events after a restart, each exactly once', async () => {
    const pg = await startThrowawayPostgres()
    const partner = await startMockPartner()
    const env = distributedEnv(pg.url)
    const first = await startRelayKey({ workers: 1, env })
    const dataDir = first.dataDir
    try {
      const setup = await setUpGovernedPartner(first, { baseUrl: partner.url })
      const warm = await request(`${first.proxyUrl}/proxy/acme/warm`, { headers: { 'x-relaykey': setup.key } })
      assert.equal(warm.statusCode, 200)
      await warm.body.dump()
      await sleep(500) // the warm-up event reaches the database

      const unused = await first.admin('POST', '/admin/keys', { name: 'never used', policy: setup.policyId, environment: 'production' })
      assert.equal(unused.status, 201)
      await pg.stop('fast')
      // a key that is not cached needs the database: fail closed, quickly
      const started = Date.now()
      const uncached = await request(`${first.proxyUrl}/proxy/acme/x`, { headers: { 'x-relaykey': unused.body.key } })
      assert.equal(uncached.statusCode, 503)
      assert.equal((await uncached.body.json() as { error: { code: string } }).error.code, 'governance_unavailable')
      assert.ok(Date.now() - started < 5000)
      for (let i = 0; i < REQUESTS; i++) {
        const res = await request(`${first.proxyUrl}/proxy/acme/during-outage/${i}`, { headers: { 'x-relaykey': setup.key } })
        assert.equal(res.statusCode, 200, 'a cached key keeps working while PostgreSQL is down')
        await res.body.dump()
      }
      await sleep(1500) // the pipeline has found the database down
      const logDir = join(dataDir, 'audit-log')
      // audit-log.<writer>.<first seq>.<owner>.ndjson: the writers whose events wait on disk
      const writersOf = (): Set<string> => new Set(readdirSync(logDir).filter((f) => f.endsWith('.ndjson')).map((f) => f.split('.')[1]!))
      const firstWriters = writersOf()
      assert.ok(firstWriters.size > 0, 'events are in the local audit log')

      // a crash: workers and primary die at once, nothing flushes
      for (const pid of childPids(first.child.pid!)) process.kill(pid, 'SIGKILL')
      first.child.kill('SIGKILL')
      await sleep(300)

      await pg.start()
      const second = await startRelayKey({ workers: 1, env, dataDir })
      try {
        const sql = postgres(pg.url, { max: 1, onnotice: () => {} })
        try {
          let rows: Array<{ n: number; distinct_ids: number }> = []
          for (let i = 0; i < 100; i++) {
            rows = await sql`SELECT count(*)::int AS n, count(DISTINCT id)::int AS distinct_ids FROM audit_events WHERE key_id = ${setup.keyId}`
            if (rows[0]!.n >= REQUESTS + 1) break
            await sleep(100)
          }
          assert.deepEqual(rows[0], { n: REQUESTS + 1, distinct_ids: REQUESTS + 1 }, `${readdirSync(logDir).join(' ')}\n${second.output().slice(-3000)}`)
          const [{ n: outage }] = await sql<[{ n: number }]>`SELECT count(*)::int AS n FROM audit_events WHERE path LIKE '/during-outage/%'`
          assert.equal(outage, REQUESTS)
        } finally {
          await sql.end()
        }
        // the killed process's segments are deleted once shipped (the new one keeps its own)
        let left: string[] = []
        for (let i = 0; i < 50; i++) {
          left = [...writersOf()].filter((w) => firstWriters.has(w))
          if (left.length === 0) break
          await sleep(100)
        }
        assert.deepEqual(left, [], 'shipped segments are gone')
      } finally {
        await second.stop()
      }
    } finally {
      await first.stop().catch(() => null)
      await partner.close()
      await pg.destroy()
    }
  })
})
