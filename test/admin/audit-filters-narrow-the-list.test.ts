// GET /admin/audit lists exactly the events that match every filter given (key_id, customer,
// partner, outcome or its alias code, from inclusive, to exclusive), pages through them with
// next_before without skipping or repeating any, and refuses malformed filters with a 400: over
// events stored by each sink, PostgreSQL and SQLite alike.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import type { AuditEvent, ChainedAuditEvent } from '../../src/audit/audit-event.js'
import type { AuditQuery } from '../../src/audit/audit-query.js'
import { openPostgresAuditSink } from '../../src/audit/postgres-audit-sink.js'
import { PostgresAuditQuery } from '../../src/audit/postgres-audit-query.js'
import { openSqliteAuditSink } from '../../src/audit/sqlite-audit-sink.js'
import { SqliteAuditQuery } from '../../src/audit/sqlite-audit-query.js'
import { runMigrations } from '../../src/store/postgres/migrate.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { asRole, auditEvent, batchOfEvents, chain } from '../audit/audit-fixtures.js'
import { assertInvalid, startAdmin, type AdminHarness } from './admin-harness.js'

const HOUR = 3_600_000
// the events cross a month boundary, so PostgreSQL answers from two partitions
const START = Date.UTC(2025, 10, 28, 9)
const COUNT = 48
/** events that share one millisecond, so paging has ties to break by id */
const TIED = new Set([20, 21, 22, 23])
const KEYS = [['key_a', 'cust-1'], ['key_b', 'cust-1'], ['key_c', 'cust-2'], [null, null]] as const
const OUTCOMES = ['forwarded', 'forwarded', 'rate_limited', 'forwarded', 'budget_exceeded', 'forwarded', 'rate_limited']

/** request_id r<i>: keys and partners cycle independently, so every filter and combination bites */
function fixtureEvents (): ChainedAuditEvent[] {
  const events: AuditEvent[] = []
  for (let i = 0; i < COUNT; i++) {
    const [keyId, customer] = KEYS[i % KEYS.length]!
    events.push({
      ...auditEvent(i, START + (TIED.has(i) ? 20 : i) * 3 * HOUR),
      request_id: `r${i}`,
      key_id: keyId,
      customer,
      partner: i % 5 < 3 ? 'acme' : 'globex',
      outcome: keyId === null ? 'invalid_key' : OUTCOMES[i % OUTCOMES.length]!,
    })
  }
  return chain(randomUUID(), events)
}

const EVENTS = fixtureEvents()
const at = (i: number): string => new Date(EVENTS[i]!.ts).toISOString()

/** what the API must answer for `params`: matching events, newest first, ties by id descending */
function expected (params: Params): string[] {
  const outcome = params.outcome ?? params.code
  return EVENTS
    .filter((e) =>
      (params.key_id === undefined || e.key_id === params.key_id) &&
      (params.customer === undefined || e.customer === params.customer) &&
      (params.partner === undefined || e.partner === params.partner) &&
      (outcome === undefined || e.outcome === outcome) &&
      (params.from === undefined || e.ts >= Date.parse(params.from)) &&
      (params.to === undefined || e.ts < Date.parse(params.to)))
    .sort((a, b) => b.ts - a.ts || (a.id < b.id ? 1 : -1))
    .map((e) => e.request_id)
}

type Params = Record<string, string>

const CASES: Params[] = [
  { key_id: 'key_b' },
  { partner: 'globex' },
  { customer: 'cust-2' },
  { outcome: 'rate_limited' },
  { outcome: 'invalid_key' },
  { code: 'budget_exceeded' },
  { from: at(30) },
  { to: at(12) },
  { from: at(9), to: at(21) },
  { key_id: 'key_a', outcome: 'forwarded' },
  { customer: 'cust-1', partner: 'acme' },
  { partner: 'acme', code: 'rate_limited', from: at(6) },
  { customer: 'cust-1', partner: 'globex', outcome: 'forwarded', from: at(9), to: at(33) },
]

describe('the fixture can tell a working filter from an ignored one', () => {
  for (const params of CASES) {
    it(new URLSearchParams(params).toString(), () => {
      const answer = expected(params)
      assert.ok(answer.length > 0, 'matches nothing')
      for (const name of Object.keys(params)) {
        const { [name]: _, ...without } = params
        assert.notDeepEqual(expected(without), answer, `dropping ${name} changes nothing`)
      }
    })
  }
})

for (const mode of ['postgres', 'sqlite'] as const) {
  describe(`GET /admin/audit filters, ${mode}`, () => {
    let admin: AdminHarness
    let query: AuditQuery
    let pg: TestDatabase | null = null
    let dir: string | null = null

    before(async () => {
      if (mode === 'postgres') {
        pg = await createTestDatabase()
        await runMigrations(pg.url)
        const appUrl = asRole(pg.url, 'relaykey_app')
        const sink = openPostgresAuditSink(appUrl)
        await sink.write(batchOfEvents(EVENTS))
        await sink.close()
        query = new PostgresAuditQuery(postgres(appUrl, { max: 1, onnotice: () => {} }))
      } else {
        dir = mkdtempSync(join(tmpdir(), 'relaykey-audit-filters-'))
        const file = join(dir, 'relaykey.db')
        const sink = openSqliteAuditSink(file)
        await sink.write(batchOfEvents(EVENTS))
        await sink.close()
        // read-only, as the admin server opens it
        query = new SqliteAuditQuery(new Database(file, { readonly: true, fileMustExist: true }))
      }
      admin = await startAdmin({ usage: { audit: query, budgets: { budgetUsed: async () => 0 } } })
    })

    after(async () => {
      await admin?.close()
      await query?.close()
      await pg?.drop()
      if (dir !== null) rmSync(dir, { recursive: true, force: true })
    })

    async function page (params: Params): Promise<{ ids: string[], next: string | null }> {
      const reply = await admin.call('GET', `/admin/audit?${new URLSearchParams(params)}`)
      assert.equal(reply.status, 200, reply.text)
      return { ids: reply.json.events.map((e: { request_id: string }) => e.request_id), next: reply.json.next_before }
    }

    it('without filters lists every event', async () => {
      assert.deepEqual((await page({ limit: '1000' })).ids, expected({}))
      assert.equal(expected({}).length, COUNT)
    })

    for (const params of CASES) {
      it(`lists exactly the matching events: ${new URLSearchParams(params)}`, async () => {
        assert.deepEqual((await page({ ...params, limit: '1000' })).ids, expected(params))
      })
    }

    it('from is inclusive and to exclusive, to the millisecond', async () => {
      const { ids } = await page({ from: at(9), to: at(12) })
      assert.deepEqual(ids, ['r11', 'r10', 'r9'])
      assert.deepEqual((await page({ from: new Date(EVENTS[9]!.ts + 1).toISOString(), to: new Date(EVENTS[12]!.ts + 1).toISOString() })).ids, ['r12', 'r11', 'r10'])
      // an empty range is no error
      assert.deepEqual((await page({ from: at(9), to: at(9) })).ids, [])
    })

    it('says null on the last page, also when it happens to be full', async () => {
      const all = expected({ from: at(9), to: at(12) })
      assert.equal(all.length, 3)
      assert.deepEqual(await page({ from: at(9), to: at(12), limit: '3' }), { ids: all, next: null })
      const first = await page({ from: at(9), to: at(12), limit: '2' })
      assert.deepEqual(first.ids, all.slice(0, 2))
      assert.notEqual(first.next, null)
      assert.deepEqual(await page({ from: at(9), to: at(12), limit: '2', before: first.next! }), { ids: all.slice(2), next: null })
    })

    it('code is outcome by another name', async () => {
      const byOutcome = (await page({ outcome: 'rate_limited' })).ids
      assert.deepEqual((await page({ code: 'rate_limited' })).ids, byOutcome)
      assert.deepEqual((await page({ outcome: 'rate_limited', code: 'rate_limited' })).ids, byOutcome)
    })

    const paged: Params[] = [{ partner: 'acme', outcome: 'forwarded' }, { from: at(14), to: at(30) }, { customer: 'cust-1', to: at(26) }]
    for (const params of paged) {
      it(`pages while filtered, visiting each match once: ${new URLSearchParams(params)}`, async () => {
        for (const limit of ['1', '2', '3']) {
          const seen: string[] = []
          let cursor: string | null = null
          do {
            const next: { ids: string[], next: string | null } = await page({ ...params, limit, ...(cursor === null ? {} : { before: cursor }) })
            seen.push(...next.ids)
            cursor = next.next
          } while (cursor !== null)
          assert.deepEqual(seen, expected(params), `limit ${limit}`)
        }
      })
    }

    it('a plain time as before combines with the filters', async () => {
      const params = { partner: 'globex', outcome: 'forwarded' }
      const before = at(25)
      const older = expected(params).filter((id) => EVENTS[Number(id.slice(1))]!.ts < Date.parse(before))
      assert.ok(older.length > 0 && older.length < expected(params).length)
      assert.deepEqual((await page({ ...params, before })).ids, older)
    })

    it('values are data, never SQL', async () => {
      const hostile: Params[] = [{ partner: "acme' OR '1'='1" }, { customer: "cust-1' --" }, { outcome: 'forwarded" OR 1=1 --' }, { key_id: '%' }]
      for (const params of hostile) {
        assert.deepEqual((await page(params)).ids, [], JSON.stringify(params))
      }
    })

    const refused: Array<[string, string]> = [
      ['from=yesterday', 'from'],
      ['from=2025-12-01', 'from'],
      ['to=2025-11-31T00:00:00Z', 'to'],
      ['to=2025-12-01T24:00:00Z', 'to'],
      [`from=${at(21)}&to=${at(19)}`, 'from'],
      ['outcome=forwarded&code=rate_limited', 'code'],
      ['partner=', 'partner'],
      ['customer=a%00', 'customer'],
      ['outcome=forwarded&outcome=rate_limited', 'outcome'],
      ['status=200', 'status'],
    ]
    for (const [search, field] of refused) {
      it(`400 for ${search}`, async () => {
        assertInvalid(await admin.call('GET', `/admin/audit?${search}`), field)
      })
    }
  })
}
