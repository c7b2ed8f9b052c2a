// One worker's leases over a real store (the embedded SQLite file): a hot key is admitted
// locally after its first decisions, a slow or nearly spent one never is, and every unit a lease
// held goes back when it idles, on an admin change, and at close.
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { LeasedAdmission } from '../../src/limits/leased-admission.js'
import { LEASE_IDLE_MS, LEASE_LIFETIME_MS, SLOW_LEASE_MAX } from '../../src/limits/lease.js'
import { openSqliteAdmissionStore, type SqliteAdmissionStore } from '../../src/store/sqlite/sqlite-admission-store.js'
import { budgetMonth } from '../../src/limits/budget-month.js'
import type { Admission, AdmissionRequest, AdmissionStore, BudgetSpec, RateLimitSpec } from '../../src/limits/admission.js'

const logger = pino({ level: 'silent' })

interface Setup {
  leases: LeasedAdmission
  store: SqliteAdmissionStore
  file: string
  owner: string
  keyId: string
}

function setUp (t: TestContext, options: { enabled?: boolean } = {}): Setup {
  const dir = mkdtempSync(join(tmpdir(), 'rk-leases-'))
  const file = join(dir, 'relaykey.db')
  const store = openSqliteAdmissionStore(file)
  const leases = new LeasedAdmission(store, { logger, enabled: options.enabled ?? true })
  t.after(async () => {
    await leases.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const keyId = `key-${randomBytes(4).toString('hex')}`
  return { leases, store, file, owner: `key:${keyId}`, keyId }
}

function keyBudget (keyId: string, monthly: number): BudgetSpec {
  return Object.freeze({ name: 'key', subject: keyId, monthly })
}

function keyLimit (keyId: string, requests: number, perSeconds: number): RateLimitSpec {
  return Object.freeze({ name: 'key', subject: keyId, intervalMs: (perSeconds * 1000) / requests, burst: requests, quota: requests, windowSeconds: perSeconds })
}

function request (s: Setup, parts: { limits?: RateLimitSpec[]; budgets?: BudgetSpec[]; cost?: number }): AdmissionRequest {
  return { limits: parts.limits ?? [], budgets: parts.budgets ?? [], cost: parts.cost ?? 1, credentials: [], now: Date.now(), groups: { owner: s.owner, partner: 'p' } }
}

/** as the gateway asks: leases first, then the store */
async function decide (leases: LeasedAdmission, req: AdmissionRequest): Promise<Admission> {
  return leases.admitLocally(req) ?? await leases.admit(req)
}

/** `n` requests in bursts of 20 a few ms apart: hot enough for a lease */
async function hot (leases: LeasedAdmission, make: () => AdmissionRequest, n: number): Promise<Admission[]> {
  const out: Admission[] = []
  for (let i = 0; i < n; i++) {
    out.push(await decide(leases, make()))
    if (i % 20 === 19) await sleep(2)
  }
  return out
}

async function used (s: Setup, budget: BudgetSpec): Promise<number> {
  return await s.store.budgetUsed(s.owner, budget, budgetMonth(Date.now()))
}

describe('admission by lease (one worker, SQLite)', () => {
  it('admits a hot key from its lease, with a store call for only a few of its requests', async (t) => {
    const s = setUp(t)
    const budget = keyBudget(s.keyId, 1_000_000)
    const limit = keyLimit(s.keyId, 100_000, 1)
    const results = await hot(s.leases, () => request(s, { limits: [limit], budgets: [budget] }), 2000)
    assert.ok(results.every((r) => r.ok))
    assert.equal(s.leases.stats.local + s.leases.stats.store, 2000)
    assert.ok(s.leases.stats.store < 200, `store decisions: ${s.leases.stats.store}`)
    // RateLimit header state from a local admission: the limit's name and a plausible room.
    // A top-up may still be on its way for a lease the loop emptied; waiting for it with a
    // plain sleep could outlast the idle timeout (which returns the lease), so keep the key
    // warm with a decision per millisecond until one is local.
    let local: Admission | null = null
    for (let i = 0; i < 50 && local === null; i++) {
      local = s.leases.admitLocally(request(s, { limits: [limit], budgets: [budget] }))
      if (local === null) { await decide(s.leases, request(s, { limits: [limit], budgets: [budget] })); await sleep(1) }
    }
    assert.ok(local !== null && local.ok)
    assert.equal(local.tightest?.name, 'key')
    assert.ok(local.tightest!.remaining > 90_000 && local.tightest!.remaining < 100_000)
    assert.ok(local.tightest!.resetSeconds <= 1)
  })

  it('gives a slow key (tens of requests a second) one large slow lease: store decisions for its first requests only, kept over a pause of a few gaps', async (t) => {
    const s = setUp(t)
    const budget = keyBudget(s.keyId, 1_000_000)
    const limit = keyLimit(s.keyId, 100_000, 1)
    const make = (): AdmissionRequest => request(s, { limits: [limit], budgets: [budget] })
    // one request every ~25 ms: slow on a 100 ms horizon, so the lease is what 24 s would see,
    // capped at SLOW_LEASE_MAX
    for (let i = 0; i < 40; i++) {
      assert.ok((await decide(s.leases, make())).ok)
      await sleep(25)
    }
    assert.equal(s.leases.stats.local + s.leases.stats.store, 40)
    assert.ok(s.leases.stats.store <= 3, `store decisions: ${s.leases.stats.store} of 40 (a slow lease of ${SLOW_LEASE_MAX} units covers the rest)`)
    const units = s.leases.heldUnits().get('key_budget') ?? 0
    assert.ok(units > 0 && units <= SLOW_LEASE_MAX, `held: ${units}`)
    // a pause of four usual gaps is not idleness (ten are): the next request is still local
    const decisions = s.leases.stats.store
    await sleep(100)
    assert.ok((await decide(s.leases, make())).ok)
    assert.equal(s.leases.stats.store, decisions)
  })

  it('counts leased units as used, and gives back what an idle lease did not spend', async (t) => {
    const s = setUp(t)
    const budget = keyBudget(s.keyId, 1_000_000)
    await hot(s.leases, () => request(s, { budgets: [budget] }), 500)
    assert.ok(await used(s, budget) > 500, 'the lease holds units beyond the 500 spent')
    assert.ok(s.leases.heldUnits().get('key_budget')! > 0)
    await sleep(LEASE_IDLE_MS * 5)
    assert.equal(await used(s, budget), 500)
    assert.equal(s.leases.heldUnits().get('key_budget') ?? 0, 0)
  })

  it('never leases a budget near its edge: every request is one exact decision', async (t) => {
    const s = setUp(t)
    const budget = keyBudget(s.keyId, 60)
    const results = await hot(s.leases, () => request(s, { budgets: [budget] }), 100)
    assert.equal(results.filter((r) => r.ok).length, 60)
    assert.equal(s.leases.stats.local, 0)
    assert.equal(await used(s, budget), 60)
  })

  it('spends a large budget exactly under leases: every unit admitted once, none past it', async (t) => {
    const s = setUp(t)
    const budget = keyBudget(s.keyId, 3000)
    const results = await hot(s.leases, () => request(s, { budgets: [budget], cost: 3 }), 1200)
    assert.equal(results.filter((r) => r.ok).length, 1000)
    assert.ok(s.leases.stats.local > 0)
    assert.equal(await used(s, budget), 3000)
  })

  it('gives every held unit back on an admin change, and grants asked before it are given straight back', async (t) => {
    const s = setUp(t)
    const budget = keyBudget(s.keyId, 1_000_000)
    await hot(s.leases, () => request(s, { budgets: [budget] }), 300)
    s.leases.invalidate({ kind: 'policy', id: 'any' })
    await sleep(20)
    assert.equal(await used(s, budget), 300)
    assert.equal(s.leases.heldUnits().get('key_budget') ?? 0, 0)
  })

  it('another key\'s revocation leaves this key\'s leases alone; its own gives them back', async (t) => {
    const s = setUp(t)
    const budget = keyBudget(s.keyId, 1_000_000)
    await hot(s.leases, () => request(s, { budgets: [budget] }), 300)
    s.leases.invalidate({ kind: 'key', id: 'some-other-key' })
    assert.ok(s.leases.heldUnits().get('key_budget')! > 0)
    s.leases.invalidate({ kind: 'key', id: s.keyId })
    assert.equal(s.leases.heldUnits().get('key_budget') ?? 0, 0)
    await sleep(20)
    assert.equal(await used(s, budget), 300)
  })

  it('keeps a small refund in the active lease, and sends a large one to the store', async (t) => {
    const s = setUp(t)
    const budget = keyBudget(s.keyId, 1_000_000)
    await hot(s.leases, () => request(s, { budgets: [budget] }), 300)
    const held = s.leases.heldUnits().get('key_budget')!
    const small = await decide(s.leases, request(s, { budgets: [budget] }))
    assert.ok(small.ok && small.reservation !== null)
    await s.leases.refund(small.reservation)
    assert.equal(s.leases.heldUnits().get('key_budget'), held)
    // what is spent (used in the store, less what the lease holds) is back where it was
    const spentBefore = await used(s, budget) - s.leases.heldUnits().get('key_budget')!
    const large = await decide(s.leases, request(s, { budgets: [budget], cost: 5000 }))
    assert.ok(large.ok && large.reservation !== null)
    await s.leases.refund(large.reservation)
    assert.equal(await used(s, budget) - s.leases.heldUnits().get('key_budget')!, spentBefore)
    assert.ok(s.leases.heldUnits().get('key_budget')! < 5000, 'the large refund did not stay in the lease')
  })

  it('gives everything back at close', async (t) => {
    const s = setUp(t)
    const budget = keyBudget(s.keyId, 1_000_000)
    await hot(s.leases, () => request(s, { budgets: [budget] }), 300)
    assert.ok(await used(s, budget) > 300)
    await s.leases.close()
    assert.equal(s.leases.heldUnits().size, 0)
    // the store closed with it: read the file through a fresh handle
    const fresh = openSqliteAdmissionStore(s.file)
    t.after(() => fresh.close())
    assert.equal(await fresh.budgetUsed(s.owner, budget, budgetMonth(Date.now())), 300)
  })

  it('serves from a valid lease while the store fails, for at most the lease lifetime', async (t) => {
    const s = setUp(t)
    const budget = keyBudget(s.keyId, 1_000_000)
    let down = false
    const store = s.store
    const flaky: AdmissionStore = {
      admit: async (r) => { if (down) throw new Error('down'); return await store.admit(r) },
      topUp: async (i, n) => { if (down) throw new Error('down'); return await store.topUp(i, n) },
      giveBack: async (i, n) => { if (down) throw new Error('down'); await store.giveBack(i, n) },
      refund: async (r) => { await store.refund(r) },
      budgetUsed: async (o, b, m) => await store.budgetUsed(o, b, m),
      ping: async () => { await store.ping() },
      close: async () => {},
    }
    const leases = new LeasedAdmission(flaky, { logger, enabled: true })
    t.after(() => leases.close())
    await hot(leases, () => request(s, { budgets: [budget] }), 300)
    down = true
    // a lease is kept alive only by its own traffic: keep it busy while the store is down
    let served = 0
    let refusedAt = -1
    const started = performance.now()
    while (performance.now() - started < LEASE_LIFETIME_MS * 2) {
      try {
        if ((await decide(leases, request(s, { budgets: [budget] }))).ok) served++
      } catch {
        refusedAt = performance.now() - started
        break
      }
      await sleep(1)
    }
    assert.ok(served > 0, 'the lease kept serving during the outage')
    assert.ok(refusedAt >= 0 && refusedAt <= LEASE_LIFETIME_MS + 100, `failed closed after ${refusedAt} ms`)
  })

  it('with leases off, every decision goes to the store', async (t) => {
    const s = setUp(t, { enabled: false })
    const budget = keyBudget(s.keyId, 1_000_000)
    await hot(s.leases, () => request(s, { budgets: [budget] }), 300)
    assert.equal(s.leases.stats.local, 0)
    assert.equal(s.leases.stats.store, 300)
    assert.equal(await used(s, budget), 300)
  })
})
