// kill -9 of a whole node under load, as an operator's worst day would have it: every request
// whose client got its complete answer (forwarded with and without a Content-Length, or refused)
// is in audit_events exactly once after the restart, and counted once in the usage rollups. Repeated
// at random moments, in both modes (and once with RELAYKEY_AUDIT_FSYNC=always), on the same data
// directory each time.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import { Pool } from 'undici'
import { distributedEnv, setUpGovernedPartner, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { killNode } from '../helpers/lease-load.js'
import { startThrowawayPostgres } from '../helpers/throwaway-postgres.js'

const ROUNDS = 3
const LOOPS = 24

/** counts stored events per path under `prefix` */
type CountByPath = (prefix: string) => Promise<Map<string, number>>
/** all stored events, and the requests the usage rollups hold, read in one snapshot */
type Totals = () => Promise<{ events: number; usage: number }>

describe('answered requests survive kill -9 of the whole node', () => {
  it('distributed mode: every answered request is stored exactly once after each restart', async () => {
    const pg = await startThrowawayPostgres()
    const sql = postgres(pg.url, { max: 1, onnotice: () => {} })
    try {
      await killRounds(distributedEnv(pg.url), async (prefix) => {
        const rows = await sql<Array<{ path: string; n: number }>>`SELECT path, count(*)::int AS n FROM audit_events WHERE path LIKE ${prefix + '%'} GROUP BY path`
        return new Map(rows.map((r) => [r.path, r.n]))
      }, async () => {
        const [row] = await sql<Array<{ events: number; usage: number }>>`
          SELECT (SELECT count(*) FROM audit_events)::int AS events, (SELECT coalesce(sum(requests), 0) FROM audit_usage_hourly)::int AS usage`
        return row!
      })
    } finally {
      await sql.end()
      await pg.destroy()
    }
  })

  for (const [name, env, rounds] of [['embedded mode', {}, ROUNDS], ['embedded mode, RELAYKEY_AUDIT_FSYNC=always', { RELAYKEY_AUDIT_FSYNC: 'always' }, 1]] as const) {
    it(`${name}: every answered request is stored exactly once after each restart`, async () => {
      await embeddedKillRounds(env, rounds)
    })
  }
})

/** killRounds on an embedded node, counting in its SQLite file */
async function embeddedKillRounds (env: Record<string, string>, rounds: number): Promise<void> {
  let dataDir = ''
  const read = <T>(query: (db: Database.Database) => T): T => {
    const db = new Database(join(dataDir, 'relaykey.db'), { readonly: true, fileMustExist: true })
    try {
      return query(db)
    } finally {
      db.close()
    }
  }
  await killRounds(env, async (prefix) => read((db) => {
    const rows = db.prepare('SELECT path, count(*) AS n FROM audit_events WHERE path LIKE ? GROUP BY path').all(prefix + '%') as Array<{ path: string; n: number }>
    return new Map(rows.map((r) => [r.path, r.n]))
  }), async () => read((db) => db.prepare(
    'SELECT (SELECT count(*) FROM audit_events) AS events, (SELECT coalesce(sum(requests), 0) FROM audit_usage_hourly) AS usage',
  ).get() as { events: number; usage: number }), (dir) => { dataDir = dir }, rounds)
}

async function killRounds (env: Record<string, string>, stored: CountByPath, totals: Totals, onDataDir?: (dir: string) => void, rounds = ROUNDS): Promise<void> {
  const partner = await startMockPartner({ collectBodies: false })
  answerBothWays(partner)
  let rk = await startRelayKey({ workers: 2, env })
  onDataDir?.(rk.dataDir)
  try {
    const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
    for (let round = 0; round < rounds; round++) {
      const prefix = `/r${round}-`
      const answered = await loadThenKill(rk, setup.key, prefix, randomInt(200, 800))
      rk = await startRelayKey({ workers: 2, env, dataDir: rk.dataDir })
      let counts = new Map<string, number>()
      for (let i = 0; i < 100; i++) {
        counts = await stored(prefix)
        if ([...answered].every((path) => counts.has(path))) break
        await sleep(100)
      }
      const missing = [...answered].filter((path) => !counts.has(path))
      assert.deepEqual(missing, [], `round ${round}: ${missing.length} of ${answered.size} answered requests have no audit event\n${rk.output().slice(-2000)}`)
      const repeated = [...counts].filter(([, n]) => n !== 1)
      assert.deepEqual(repeated, [], `round ${round}: events stored more than once`)
      // replays after the kill added each stored event to usage once, no more
      const { events, usage } = await totals()
      assert.equal(usage, events, `round ${round}: usage rollups count ${usage} requests, audit_events holds ${events}`)
    }
  } finally {
    await rk.stop().catch(() => null)
    await partner.close()
  }
}

/**
 * Requests on unique paths from LOOPS concurrent loops (one in five with an unknown key: a
 * refusal), until `target` have been answered completely; then the node is killed mid-load.
 * Returns the paths whose answers arrived whole.
 */
async function loadThenKill (rk: RelayKeyProcess, key: string, prefix: string, target: number): Promise<Set<string>> {
  const pool = new Pool(rk.proxyUrl, { connections: LOOPS })
  const answered = new Set<string>()
  let next = 0
  let killing = false
  let failure: Error | null = null
  const loop = async (): Promise<void> => {
    while (!killing && failure === null) {
      const n = next++
      const path = `${prefix}${n}`
      const badKey = n % 5 === 4
      try {
        const res = await pool.request({ path: `/proxy/acme${path}`, method: 'GET', headers: { 'x-relaykey': badKey ? 'vk_unknown' : key } })
        const body = await res.body.text()
        const expected = badKey ? res.statusCode === 401 : res.statusCode === 200 && body === `answer for ${path}`
        if (!expected) failure = new Error(`${path}: ${res.statusCode} ${body}`)
        else answered.add(path)
      } catch (err) {
        if (!killing) failure = err as Error
      }
    }
  }
  const loops = Array.from({ length: LOOPS }, loop)
  while (answered.size < target && failure === null) await sleep(1)
  killing = true
  await killNode(rk)
  await Promise.all(loops)
  await pool.destroy()
  if (failure !== null) throw failure
  return answered
}

/** even requests get a Content-Length answer, odd ones a chunked one in two pieces */
function answerBothWays (partner: MockPartner): void {
  partner.handle((req, res) => {
    const path = req.url!
    const body = `answer for ${path}`
    if (Number(path.slice(path.lastIndexOf('-') + 1)) % 2 === 0) {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
      res.end(body)
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write(body.slice(0, 5))
    setImmediate(() => res.end(body.slice(5)))
  })
}
