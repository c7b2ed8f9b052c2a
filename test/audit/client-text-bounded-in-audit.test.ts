// A client writes its own partner segment and path into its audit event. A 6,000-character
// partner segment used to make an event PostgreSQL refused (larger than an index row may be):
// its whole batch was refused, and every later event of that worker waited behind it. Now the
// stored values are bounded and every event, the huge one's included, reaches the store.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import { request } from 'undici'
import { distributedEnv, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { MAX_PARTNER_CHARS, MAX_PATH_CHARS } from '../../src/audit/bounded-fields.js'

interface Row { partner: string; path: string; outcome: string }

const HUGE_PARTNER = 'p'.repeat(6_000)
const LONG_PATH = '/' + 'x'.repeat(12_000)

/** key-less requests (401 missing_key): a huge partner segment, a long path, then ordinary ones */
async function send (rk: RelayKeyProcess): Promise<void> {
  for (const path of [`${HUGE_PARTNER}/x`, `acme${LONG_PATH}`, 'acme/after-1', 'acme/after-2']) {
    const res = await request(`${rk.proxyUrl}/proxy/${path}`)
    await res.body.dump()
    assert.equal(res.statusCode, 401, path.slice(0, 40))
  }
}

/** polls until `read` returns 4 rows, for a few seconds */
async function fourRows (read: () => Promise<Row[]>): Promise<Row[]> {
  let rows: Row[] = []
  for (let i = 0; i < 50 && rows.length < 4; i++) {
    await sleep(100)
    rows = await read()
  }
  return rows
}

function check (rows: Row[]): void {
  assert.equal(rows.length, 4, `events stored: ${rows.map((r) => r.path.slice(0, 20)).join(', ')}`)
  const huge = rows.find((r) => r.partner.startsWith('ppp'))!
  assert.equal(huge.partner, 'p'.repeat(MAX_PARTNER_CHARS))
  const long = rows.find((r) => r.path.startsWith('/xxx'))!
  assert.equal(long.path, `/${'x'.repeat(MAX_PATH_CHARS - 1)}…[${LONG_PATH.length - MAX_PATH_CHARS} more characters]`)
  assert.deepEqual(rows.filter((r) => r.path.startsWith('/after')).map((r) => r.path).sort(), ['/after-1', '/after-2'])
  assert.ok(rows.every((r) => r.outcome === 'missing_key'))
}

describe('client text in audit events is bounded, and never holds later events back', () => {
  it('embedded mode (SQLite)', async () => {
    const rk = await startRelayKey({ workers: 1 })
    try {
      await send(rk)
      const db = new Database(join(rk.dataDir, 'relaykey.db'), { readonly: true })
      try {
        check(await fourRows(async () => db.prepare('SELECT partner, path, outcome FROM audit_events').all() as Row[]))
      } finally {
        db.close()
      }
    } finally {
      assert.equal(await rk.stop(), 0)
    }
  })

  it('distributed mode (PostgreSQL COPY)', async () => {
    const database = await createTestDatabase()
    const rk = await startRelayKey({ workers: 1, env: distributedEnv(database.url) })
    const sql = postgres(database.url, { max: 1, onnotice: () => {} })
    try {
      await send(rk)
      check(await fourRows(async () => [...await sql<Row[]>`SELECT partner, path, outcome FROM audit_events`]))
    } finally {
      await rk.stop()
      await sql.end()
      await database.drop()
    }
  })
})
