// A client writes its own partner segment and path into its audit event. A 6,000-character
// partner segment used to make an event PostgreSQL refused (larger than an index row may be):
// its whole batch was refused, and every later event of that worker waited behind it. Now the
// stored values are bounded and every event, the huge one's included, reaches the store.
// Control characters and invalid UTF-8 in the request line never reach the proxy route (the
// HTTP parser refuses them, 400); percent-encoded they do, and are stored as sent. A 100 KiB
// path is refused before the route (431). None of it holds back the events after it.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
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
/** percent-encoded NUL, controls and bytes that are not UTF-8: text the route receives as is */
const ENCODED_PARTNER = '%00%01%1b%7f%c3%28%ff'
const ENCODED_PATH = '/%00%0a%0d%09%c3%28%ed%a0%80%fe'
/** raw in the request line: the parser refuses them before any route */
const RAW_BYTES = [[0x00], [0x01], [0x1b], [0x7f], [0xc3, 0x28], [0xff, 0xfe], [0xed, 0xa0, 0x80]]
const EXPECTED_ROWS = 6

/** one request written byte for byte; resolves with the status line's code */
async function rawRequest (rk: RelayKeyProcess, target: Buffer): Promise<number> {
  const { port } = new URL(rk.proxyUrl)
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.end(Buffer.concat([Buffer.from('GET '), target, Buffer.from(' HTTP/1.1\r\nhost: relaykey\r\nconnection: close\r\n\r\n')]))
    })
    let answer = ''
    socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
    socket.on('end', () => resolve(Number(answer.slice(9, 12))))
    socket.on('error', reject)
  })
}

/**
 * Key-less requests (401 missing_key): a huge partner segment, a long path, percent-encoded
 * controls and invalid UTF-8; raw ones (400) and a 100 KiB path (431) in between; then
 * ordinary ones, whose events must not wait behind any of it.
 */
async function send (rk: RelayKeyProcess): Promise<void> {
  for (const path of [`${HUGE_PARTNER}/x`, `acme${LONG_PATH}`, `${ENCODED_PARTNER}/x`, `acme${ENCODED_PATH}`]) {
    const res = await request(`${rk.proxyUrl}/proxy/${path}`)
    await res.body.dump()
    assert.equal(res.statusCode, 401, path.slice(0, 40))
  }
  for (const bytes of RAW_BYTES) {
    assert.equal(await rawRequest(rk, Buffer.concat([Buffer.from('/proxy/ac'), Buffer.from(bytes), Buffer.from('me/x')])), 400)
    assert.equal(await rawRequest(rk, Buffer.concat([Buffer.from('/proxy/acme/x'), Buffer.from(bytes)])), 400)
  }
  assert.equal(await rawRequest(rk, Buffer.from('/proxy/acme/' + 'y'.repeat(100 * 1024))), 431)
  for (const path of ['acme/after-1', 'acme/after-2']) {
    const res = await request(`${rk.proxyUrl}/proxy/${path}`)
    await res.body.dump()
    assert.equal(res.statusCode, 401, path)
  }
}

/** polls until `read` returns every row, for a few seconds */
async function allRows (read: () => Promise<Row[]>): Promise<Row[]> {
  let rows: Row[] = []
  for (let i = 0; i < 50 && rows.length < EXPECTED_ROWS; i++) {
    await sleep(100)
    rows = await read()
  }
  return rows
}

function check (rows: Row[]): void {
  assert.equal(rows.length, EXPECTED_ROWS, `events stored: ${rows.map((r) => r.path.slice(0, 20)).join(', ')}`)
  const huge = rows.find((r) => r.partner.startsWith('ppp'))!
  assert.equal(huge.partner, 'p'.repeat(MAX_PARTNER_CHARS))
  const long = rows.find((r) => r.path.startsWith('/xxx'))!
  assert.equal(long.path, `/${'x'.repeat(MAX_PATH_CHARS - 1)}…[${LONG_PATH.length - MAX_PATH_CHARS} more characters]`)
  assert.ok(rows.some((r) => r.partner === ENCODED_PARTNER), 'the percent-encoded partner segment is stored as sent')
  assert.ok(rows.some((r) => r.path === ENCODED_PATH), 'the percent-encoded path is stored as sent')
  assert.deepEqual(rows.filter((r) => r.path.startsWith('/after')).map((r) => r.path).sort(), ['/after-1', '/after-2'])
  assert.ok(rows.every((r) => r.outcome === 'missing_key'))
  assert.ok(rows.every((r) => r.partner.length <= MAX_PARTNER_CHARS && r.path.length <= MAX_PATH_CHARS + 40))
}

describe('client text in audit events is bounded, and never holds later events back', () => {
  it('embedded mode (SQLite)', async () => {
    const rk = await startRelayKey({ workers: 1 })
    try {
      await send(rk)
      const db = new Database(join(rk.dataDir, 'relaykey.db'), { readonly: true })
      try {
        check(await allRows(async () => db.prepare('SELECT partner, path, outcome FROM audit_events').all() as Row[]))
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
      check(await allRows(async () => [...await sql<Row[]>`SELECT partner, path, outcome FROM audit_events`]))
    } finally {
      await rk.stop()
      await sql.end()
      await database.drop()
    }
  })
})
