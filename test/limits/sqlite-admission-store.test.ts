// The SQLite admission store: the shared contract on a temp file, plus what only SQLite has —
// several processes deciding on one file, its own tables next to the control store's, failing
// closed on a locked file, and sweeping expired rows.
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { GovernanceUnavailableError } from '../../src/errors.js'
import type { AdmissionRequest } from '../../src/limits/admission.js'
import { openSqliteDatabase } from '../../src/store/sqlite/schema.js'
import { openSqliteAdmissionStore, SqliteAdmissionStore } from '../../src/store/sqlite/sqlite-admission-store.js'
import { runAdmissionStoreContract } from './admission-store.contract.js'
import type { WorkerJob, WorkerReport } from './admission-worker.fixture.js'
import { nextMessage } from '../helpers/child-messages.js'

const WORKER = fileURLToPath(new URL('./admission-worker.fixture.js', import.meta.url))
const NOW = Date.parse('2026-03-15T12:00:00.000Z')

async function tempFile (t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaykey-admission-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return join(dir, 'relaykey.db')
}

function budgetRequest (id: string, monthly: number): AdmissionRequest {
  return {
    limits: [],
    budgets: [{ name: 'key', subject: id, monthly }],
    cost: 1,
    credentials: [],
    now: NOW,
    groups: { owner: `key:${id}`, partner: 'acme' },
  }
}

function rateRequest (id: string, burst: number): AdmissionRequest {
  return {
    limits: [{ name: 'key', subject: id, intervalMs: 1000, burst, quota: burst, windowSeconds: burst }],
    budgets: [],
    cost: 1,
    credentials: [],
    now: NOW,
    groups: { owner: `key:${id}`, partner: 'acme' },
  }
}

runAdmissionStoreContract('sqlite', async (clock) => {
  const dir = await mkdtemp(join(tmpdir(), 'relaykey-admission-'))
  const store = openSqliteAdmissionStore(join(dir, 'relaykey.db'), { now: () => clock.now })
  return {
    store,
    async cleanup () {
      await store.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
})

describe('sqlite admission store: two worker processes on one file', () => {
  /** forks `workers` processes, starts them together, and sums what they were admitted */
  async function race (t: TestContext, file: string, request: AdmissionRequest, workers: number, admits: number): Promise<WorkerReport[]> {
    const job: WorkerJob = { file, now: NOW, admits, request }
    const children: ChildProcess[] = []
    t.after(() => {
      for (const child of children) if (child.exitCode === null) child.kill()
    })
    for (let i = 0; i < workers; i++) children.push(fork(WORKER, [JSON.stringify(job)], { stdio: 'inherit' }))
    await Promise.all(children.map((child) => nextMessage(child)))
    const reports = children.map(async (child) => await nextMessage(child) as WorkerReport)
    const at = Date.now() + 100
    for (const child of children) child.send({ at })
    return Promise.all(reports)
  }

  it('admits exactly 100 of 2 × 200 concurrent requests against a budget of 100', async (t) => {
    const file = await tempFile(t)
    const reports = await race(t, file, budgetRequest('k-budget', 100), 2, 200)
    t.diagnostic(`admitted per worker: ${reports.map((r) => r.admitted).join(' + ')}`)
    assert.deepEqual(reports.flatMap((r) => r.failed), [])
    assert.equal(reports.reduce((sum, r) => sum + r.admitted, 0), 100)
    assert.equal(reports.reduce((sum, r) => sum + (r.refused.budget_exceeded ?? 0), 0), 300)
    const store = openSqliteAdmissionStore(file)
    t.after(() => store.close())
    assert.equal(await store.budgetUsed('key:k-budget', { name: 'key', subject: 'k-budget' }, '2026-03'), 100)
  })

  it('admits exactly 50 of 2 × 200 concurrent requests against a burst of 50 on a frozen clock', async (t) => {
    const file = await tempFile(t)
    const reports = await race(t, file, rateRequest('k-rate', 50), 2, 200)
    t.diagnostic(`admitted per worker: ${reports.map((r) => r.admitted).join(' + ')}`)
    assert.deepEqual(reports.flatMap((r) => r.failed), [])
    assert.equal(reports.reduce((sum, r) => sum + r.admitted, 0), 50)
    assert.equal(reports.reduce((sum, r) => sum + (r.refused.rate_limited ?? 0), 0), 350)
  })
})

describe('sqlite admission store: the file', () => {
  it('keeps its tables next to the control store, outside its user_version list', async (t) => {
    const file = await tempFile(t)
    const db = openSqliteDatabase(file)
    t.after(() => db.close())
    const version = db.pragma('user_version', { simple: true })
    const first = new SqliteAdmissionStore(db)
    // a second store (another worker) on the same file finds the tables and creates nothing
    const second = new SqliteAdmissionStore(db)
    assert.equal(db.pragma('user_version', { simple: true }), version)
    assert.ok((await first.admit(budgetRequest('k', 1))).ok)
    assert.equal((await second.admit(budgetRequest('k', 1))).ok, false)
    await first.close()
    await second.close()
    // not owned: the control store's handle stays open
    assert.equal(db.open, true)
  })

  it('opens in WAL mode with synchronous NORMAL and a busy timeout', async (t) => {
    const file = await tempFile(t)
    const store = openSqliteAdmissionStore(file)
    await store.close()
    const db = new Database(file)
    t.after(() => db.close())
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
    const fresh = openSqliteAdmissionStore(file, { busyTimeoutMs: 5000 })
    await fresh.ping()
    await fresh.close()
  })

  it('fails closed with GovernanceUnavailableError while another process holds the write lock past the timeout', async (t) => {
    const file = await tempFile(t)
    const store = openSqliteAdmissionStore(file, { busyTimeoutMs: 50 })
    t.after(() => store.close())
    const other = new Database(file)
    t.after(() => other.close())
    other.exec('BEGIN IMMEDIATE')
    const isUnavailable = (err: unknown): boolean => {
      assert.ok(err instanceof GovernanceUnavailableError, `expected GovernanceUnavailableError, got ${String(err)}`)
      assert.equal(err.code, 'governance_unavailable')
      return true
    }
    await assert.rejects(store.admit(budgetRequest('k', 10)), isUnavailable)
    await assert.rejects(store.refund({ owner: 'key:k', budgets: [{ name: 'key', subject: 'k', monthly: 10 }], cost: 1, month: '2026-03' }), isUnavailable)
    other.exec('COMMIT')
    assert.ok((await store.admit(budgetRequest('k', 10))).ok)
  })

  it('fails closed with GovernanceUnavailableError on a closed database', async (t) => {
    const file = await tempFile(t)
    const db = new Database(file)
    const store = new SqliteAdmissionStore(db)
    db.close()
    await assert.rejects(store.admit(budgetRequest('k', 10)), GovernanceUnavailableError)
    await assert.rejects(store.budgetUsed('key:k', { name: 'key', subject: 'k' }, '2026-03'), GovernanceUnavailableError)
    await assert.rejects(store.ping(), GovernanceUnavailableError)
  })

  it('sweeps rate-limit rows whose time has passed and budget rows of long-gone months', async (t) => {
    const file = await tempFile(t)
    const clock = { now: Date.parse('2026-01-20T00:00:00.000Z') }
    const store = openSqliteAdmissionStore(file, { now: () => clock.now })
    t.after(() => store.close())
    const spy = new Database(file, { readonly: true })
    t.after(() => spy.close())
    const rows = (table: string): number => spy.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number
    const at = (iso: string, req: AdmissionRequest): AdmissionRequest => {
      clock.now = Date.parse(iso)
      return { ...req, now: clock.now }
    }
    await store.admit(at('2026-01-20T00:00:00.000Z', { ...rateRequest('old', 5), budgets: budgetRequest('old', 10).budgets }))
    assert.equal(rows('rate_limit_state'), 1)
    assert.equal(rows('budget_usage'), 1)
    // a minute later the next decision sweeps: the TAT is long past, January is still read
    await store.admit(at('2026-01-20T00:01:01.000Z', rateRequest('new', 5)))
    assert.equal(rows('rate_limit_state'), 1)
    assert.equal(rows('budget_usage'), 1)
    // 40 days after January ended, its budget rows go too
    await store.admit(at('2026-03-13T00:00:00.000Z', rateRequest('newer', 5)))
    assert.equal(rows('budget_usage'), 0)
    assert.equal(await store.budgetUsed('key:old', { name: 'key', subject: 'old' }, '2026-01'), 0)
  })
})
