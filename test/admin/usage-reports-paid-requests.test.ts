// GET /admin/usage counts x402-paid requests and sums their amounts exactly (atomic units pass
// 2^53 and 2^64) per key and per customer, and GET /admin/audit shows payment_tx and
// payment_amount: over events stored by each sink, with PostgreSQL and SQLite answering alike.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import type { AuditEvent, ChainedAuditEvent } from '../../src/audit/audit-event.js'
import type { AuditQuery } from '../../src/audit/audit-query.js'
import { openPostgresAuditSink } from '../../src/audit/postgres-audit-sink.js'
import { PostgresAuditQuery } from '../../src/audit/postgres-audit-query.js'
import { openSqliteAuditSink } from '../../src/audit/sqlite-audit-sink.js'
import { SqliteAuditQuery } from '../../src/audit/sqlite-audit-query.js'
import { runMigrations } from '../../src/store/postgres/migrate.js'
import { openSqliteDatabase } from '../../src/store/sqlite/schema.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { asRole, auditEvent, batchOfEvents, chain } from '../audit/audit-fixtures.js'
import { startAdmin, type AdminHarness } from './admin-harness.js'

const MONTH = '2025-11'
const IN_MONTH = Date.UTC(2025, 10, 15, 12)
const NEXT_MONTH = Date.UTC(2025, 11, 1)
const UINT256_MAX = (2n ** 256n - 1n).toString()

/** switches the admin server between the two stores' answers */
class SwitchedQuery implements AuditQuery {
  target: AuditQuery | null = null
  usage (...args: Parameters<AuditQuery['usage']>): ReturnType<AuditQuery['usage']> { return this.target!.usage(...args) }
  list (...args: Parameters<AuditQuery['list']>): ReturnType<AuditQuery['list']> { return this.target!.list(...args) }
  async close (): Promise<void> {}
}

function paidEvents (keyId: string, otherKeyId: string, customer: string): ChainedAuditEvent[] {
  let i = 0
  const event = (fields: Partial<AuditEvent>): AuditEvent => ({
    ...auditEvent(3 * ++i, IN_MONTH + i), key_id: keyId, customer, payment_tx: null, payment_amount: null, ...fields,
  })
  return chain(randomUUID(), [
    event({ payment_tx: '0xa1', payment_amount: '18446744073709551616' }),
    event({ payment_tx: '0xa2', payment_amount: '1' }),
    // settled before payment_amount existed: a paid request, no amount to add
    event({ payment_tx: '0xa3' }),
    // priced but never settled (the facilitator refused): not paid
    event({ status: 402, outcome: 'payment_failed', payment_amount: '500' }),
    event({}),
    event({ key_id: otherKeyId, payment_tx: '0xb1', payment_amount: UINT256_MAX }),
    event({ key_id: null, customer: null, payment_tx: '0xc1', payment_amount: '3' }),
    event({ ts: NEXT_MONTH, payment_tx: '0xd1', payment_amount: '7' }),
    event({ key_id: null, customer: `${customer}-free` }),
  ])
}

describe('usage and audit show x402 payments', () => {
  const query = new SwitchedQuery()
  let admin: AdminHarness
  let pg: TestDatabase
  let stores: Array<[string, AuditQuery]>
  let dir: string
  let keyId: string
  let customer: string

  before(async () => {
    admin = await startAdmin({ usage: { audit: query, budgets: { budgetUsed: async () => 0 } } })
    const policy = (await admin.call('POST', '/admin/policies', { name: 'paid' })).json.id
    customer = `cust-${randomUUID()}`
    const key = await admin.call('POST', '/admin/keys', { name: 'payer', policy, environment: 'production', customer })
    assert.equal(key.status, 201, key.text)
    keyId = key.json.id
    const events = paidEvents(keyId, 'key_other', customer)

    pg = await createTestDatabase()
    await runMigrations(pg.url)
    const appUrl = asRole(pg.url, 'relaykey_app')
    const pgSink = openPostgresAuditSink(appUrl)
    await pgSink.write(batchOfEvents(events))
    await pgSink.close()
    dir = mkdtempSync(join(tmpdir(), 'relaykey-usage-'))
    const sqliteSink = openSqliteAuditSink(join(dir, 'relaykey.db'))
    await sqliteSink.write(batchOfEvents(events))
    await sqliteSink.close()
    stores = [
      ['postgres', new PostgresAuditQuery(postgres(appUrl, { max: 1, onnotice: () => {} }))],
      ['sqlite', new SqliteAuditQuery(openSqliteDatabase(join(dir, 'relaykey.db')))],
    ]
  })

  after(async () => {
    for (const [, store] of stores ?? []) await store.close()
    await admin?.close()
    await pg?.drop()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  /** the same call against each store: the bodies, which must be identical */
  async function ask (path: string): Promise<any> {
    const bodies = []
    for (const [name, store] of stores) {
      query.target = store
      const reply = await admin.call('GET', path)
      assert.equal(reply.status, 200, `${name}: ${reply.text}`)
      bodies.push(reply.json)
    }
    assert.deepEqual(bodies[1], bodies[0], `${stores[1]![0]} answers ${path} unlike ${stores[0]![0]}`)
    return bodies[0]
  }

  it('per key: settled requests, and their amounts summed exactly past 2^64', async () => {
    const usage = await ask(`/admin/usage?key_id=${keyId}&month=${MONTH}`)
    assert.deepEqual(usage.paid, { requests: 3, amount: '18446744073709551617' })
    assert.equal(usage.requests, 5)
  })

  it('per customer, across its keys, past 2^256', async () => {
    const usage = await ask(`/admin/usage?customer=${customer}&month=${MONTH}`)
    assert.deepEqual(usage.paid, { requests: 4, amount: (18446744073709551617n + BigInt(UINT256_MAX)).toString() })
  })

  it('without a filter, and "0" where nothing was paid', async () => {
    const all = await ask(`/admin/usage?month=${MONTH}&partner=acme`)
    assert.deepEqual(all.paid, { requests: 5, amount: (18446744073709551620n + BigInt(UINT256_MAX)).toString() })
    assert.deepEqual((await ask('/admin/usage?month=2025-12&customer=nobody')).paid, { requests: 0, amount: '0' })
    const free = await ask(`/admin/usage?month=${MONTH}&customer=${customer}-free`)
    assert.deepEqual({ requests: free.requests, paid: free.paid }, { requests: 1, paid: { requests: 0, amount: '0' } })
  })

  it('GET /admin/audit shows payment_tx and payment_amount as stored', async () => {
    const { events } = await ask(`/admin/audit?key_id=${keyId}`)
    // newest first
    assert.deepEqual(events.map((e: any) => [e.payment_tx, e.payment_amount]), [
      ['0xd1', '7'], [null, null], [null, '500'], ['0xa3', null], ['0xa2', '1'], ['0xa1', '18446744073709551616'],
    ])
  })
})
