// `relaykey audit verify` on a trail RelayKey itself wrote, block-chained: several workers, a
// restart in between, concurrent requests (blocks of several events). Intact, it exits 0; a row
// changed, deleted or slipped in behind the triggers' back (as the table's owner) exits 1 and is
// named: the deleted and the inserted row by their seq and id, the changed one by its block.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import { Pool } from 'undici'
import { distributedEnv, setUpGovernedPartner, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { runAuditVerify } from '../helpers/audit-verify-cli.js'

const PER_RUN = 300

const verify = runAuditVerify

/** PER_RUN requests, 16 at a time, so one event-loop turn often ends several: blocks of several rows */
async function traffic (rk: RelayKeyProcess, key: string, tag: string): Promise<void> {
  const pool = new Pool(rk.proxyUrl, { connections: 16 })
  let next = 0
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < PER_RUN) {
      const res = await pool.request({ path: `/proxy/acme/${tag}/${next++}`, method: 'GET', headers: { 'x-relaykey': key } })
      await res.body.dump()
      assert.equal(res.statusCode, 200)
    }
  }))
  await pool.close()
}

interface Row { id: string; writer_id: string; seq: number }
interface Block { writer_id: string; first_seq: number; last_seq: number }

/** two runs of a 2-worker node on one data dir, a graceful restart between them */
async function writeTrail (env: Record<string, string>, count: (dataDir: string) => Promise<number>): Promise<string> {
  const partner = await startMockPartner({ collectBodies: false })
  let rk = await startRelayKey({ workers: 2, env })
  const dataDir = rk.dataDir
  try {
    const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
    await traffic(rk, setup.key, 'first')
    assert.equal(await rk.stop(), 0)
    rk = await startRelayKey({ workers: 2, env, dataDir })
    await traffic(rk, setup.key, 'second')
    for (let i = 0; i < 50 && await count(dataDir) < 2 * PER_RUN; i++) await sleep(100)
    assert.equal(await count(dataDir), 2 * PER_RUN)
  } finally {
    await rk.stop()
    await partner.close()
  }
  return dataDir
}

/** a block of several rows, and the row in its middle */
function middleOfABlock (blocks: Block[], rows: Row[]): { block: Block, row: Row } {
  const block = blocks.find((b) => b.last_seq - b.first_seq >= 2)
  assert.ok(block !== undefined, 'concurrent requests made a block of several events')
  const row = rows.find((r) => r.writer_id === block.writer_id && r.seq === block.first_seq + 1)!
  return { block, row }
}

function assertNamed (out: string, block: Block, deleted: Row, inserted: string): void {
  assert.match(out, new RegExp(`ALTERED block seq ${block.first_seq}–${block.last_seq} writer ${block.writer_id}`))
  assert.match(out, new RegExp(`MISSING row seq ${deleted.seq} writer ${deleted.writer_id}`))
  assert.match(out, new RegExp(`BROKEN LINK at row id ${inserted}`))
  assert.match(out, /3 broken chains/)
}

describe('relaykey audit verify on block-chained trails', () => {
  it('PostgreSQL: intact across workers and a restart; a changed, a deleted and an inserted row named', async () => {
    const db = await createTestDatabase()
    const admin = postgres(db.url, { max: 1, onnotice: () => {} })
    try {
      await writeTrail(distributedEnv(db.url), async () => (await admin<[{ n: number }]>`SELECT count(*)::int AS n FROM audit_events`)[0].n)
      const env = { DATABASE_URL: db.url }
      const intact = verify(env)
      assert.equal(intact.status, 0, intact.out)
      assert.match(intact.out, new RegExp(`audit verify: [2-4] writers, ${2 * PER_RUN} events, intact`))

      const rows = await admin<Row[]>`SELECT id, writer_id, seq::int AS seq FROM audit_events ORDER BY writer_id, seq`
      const blocks = await admin<Block[]>`SELECT writer_id, first_seq::int AS first_seq, last_seq::int AS last_seq FROM audit_blocks ORDER BY writer_id, first_seq`
      const { block, row } = middleOfABlock(blocks, rows)
      const others = rows.filter((r) => r.writer_id !== block.writer_id)
      const otherWriter = others[0]!.writer_id
      const deleted = others.find((r) => r.writer_id === otherWriter && r.seq === 7)!
      const inserted = 'ffffffff-ffff-4fff-bfff-ffffffffffff'
      // a third writer, so each problem is the first of a chain of its own; its copy sorts
      // after the row it copies (same seq and ts, a larger id)
      const third = rows.find((r) => r.writer_id !== block.writer_id && r.writer_id !== otherWriter) ?? null
      await admin.begin(async (tx) => {
        await tx`SET LOCAL ROLE relaykey_audit_owner`
        await tx`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`
        await tx`UPDATE audit_events SET status = 201 WHERE id = ${row.id}`
        await tx`DELETE FROM audit_events WHERE id = ${deleted.id}`
        if (third !== null) {
          await tx`INSERT INTO audit_events SELECT ts, ${inserted}::uuid, request_id, key_id, customer, team, service, environment, partner, credential_id, method, path, status, outcome, attempts, latency_ms, upstream_latency_ms, cost, bytes_in, bytes_out, payment_tx, writer_id, seq, prev_hash, hash, payment_amount FROM audit_events WHERE id = ${third.id}`
        }
        await tx`ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only`
      })
      const broken = verify(env)
      assert.equal(broken.status, 1, broken.out)
      if (third !== null) assertNamed(broken.out, block, deleted, inserted)
      else assert.match(broken.out, /2 broken chains/)
    } finally {
      await admin.end()
      await db.drop()
    }
  })

  it('SQLite: intact across workers and a restart; a changed, a deleted and an inserted row named', async () => {
    const dataDir = await writeTrail({}, async (dir) => {
      const db = new Database(join(dir, 'relaykey.db'), { readonly: true })
      try {
        return (db.prepare('SELECT count(*) AS n FROM audit_events').get() as { n: number }).n
      } finally {
        db.close()
      }
    })
    const file = join(dataDir, 'relaykey.db')
    const env = { RELAYKEY_DATA_DIR: dataDir }
    const intact = verify(env)
    assert.equal(intact.status, 0, intact.out)
    assert.match(intact.out, new RegExp(`audit verify: [2-4] writers, ${2 * PER_RUN} events, intact`))
    const db = new Database(file)
    const rows = db.prepare('SELECT id, writer_id, seq FROM audit_events ORDER BY writer_id, seq').all() as Row[]
    const blocks = db.prepare('SELECT writer_id, first_seq, last_seq FROM audit_blocks ORDER BY writer_id, first_seq').all() as Block[]
    const { block, row } = middleOfABlock(blocks, rows)
    const otherWriter = rows.find((r) => r.writer_id !== block.writer_id)!.writer_id
    const deleted = rows.find((r) => r.writer_id === otherWriter && r.seq === 7)!
    const third = rows.find((r) => r.writer_id !== block.writer_id && r.writer_id !== otherWriter) ?? null
    const inserted = 'ffffffff-ffff-4fff-bfff-ffffffffffff'
    try {
      // a file has no roles: whoever can write it can drop the triggers, which the blocks expose
      db.exec('DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete')
      db.prepare('UPDATE audit_events SET status = 201 WHERE id = ?').run(row.id)
      db.prepare('DELETE FROM audit_events WHERE id = ?').run(deleted.id)
      if (third !== null) {
        db.prepare('INSERT INTO audit_events SELECT ts, ?, request_id, key_id, customer, team, service, environment, partner, credential_id, method, path, status, outcome, attempts, latency_ms, upstream_latency_ms, cost, bytes_in, bytes_out, payment_tx, writer_id, seq, prev_hash, hash, payment_amount FROM audit_events WHERE id = ?').run(inserted, third.id)
      }
    } finally {
      db.close()
    }
    const broken = verify(env)
    assert.equal(broken.status, 1, broken.out)
    if (third !== null) assertNamed(broken.out, block, deleted, inserted)
    else assert.match(broken.out, /2 broken chains/)
  })
})
