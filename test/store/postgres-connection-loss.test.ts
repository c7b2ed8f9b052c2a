// A PostgreSQL connection lost while it is being set up must fail the query that opened it, not
// the process: postgres.js's own start-up query (array types) used to reject with nobody to
// handle it, and an unhandled rejection ends a Node process. The loss is timed with a fault
// proxy adding latency, so the reset lands after start-up, while that query would be in
// flight. (With postgres.js's default options the test runner reports the stray rejection.)
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import postgres from 'postgres'
import { CLIENT_OPTIONS } from '../../src/store/postgres/client-options.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { TcpFaultProxy } from '../helpers/tcp-fault-proxy.js'

/** one way, per chunk: start-up (trust auth) is one round trip, so the first query goes out at
 * about 2 × this and its answer comes back at about 4 × this */
const LATENCY_MS = 100

describe('a PostgreSQL connection lost while it starts', () => {
  let db: TestDatabase
  let proxy: TcpFaultProxy
  const unhandled: unknown[] = []
  const record = (reason: unknown): void => { unhandled.push(reason) }

  before(async () => {
    db = await createTestDatabase()
    proxy = await TcpFaultProxy.start({ port: Number(new URL(db.url).port || 5432) })
    process.on('unhandledRejection', record)
  })

  after(async () => {
    process.off('unhandledRejection', record)
    await proxy.close()
    await db.drop()
  })

  async function loseConnectionDuringStartUp (options: postgres.Options<Record<string, postgres.PostgresType>>): Promise<unknown> {
    const url = new URL(db.url)
    url.port = String(proxy.port)
    proxy.setLatency(LATENCY_MS)
    const sql = postgres(url.toString(), { max: 1, ...options })
    const outcome = sql`SELECT 1 AS one`.then(() => 'answered', (err: unknown) => err)
    // after the start-up's answer reached the client, before the first query's answer
    await sleep(LATENCY_MS * 3)
    proxy.resetAll()
    const result = await outcome
    await sleep(200) // an unhandled rejection is reported on a later tick
    await sql.end({ timeout: 0 })
    proxy.pass()
    return result
  }

  it('fails only the query with RelayKey\'s client options', async () => {
    unhandled.length = 0
    const result = await loseConnectionDuringStartUp({ ...CLIENT_OPTIONS })
    assert.notEqual(result, 'answered')
    assert.deepEqual(unhandled, [], 'no promise left rejected without a handler')
  })
})
