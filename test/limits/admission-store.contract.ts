// The behaviour every AdmissionStore must show, run against each implementation by its own
// test file (SQLite, single Redis, Redis Cluster). Each case opens its own store on its own
// injected clock and uses its own random ids, so nothing here depends on how a store keeps or
// cleans its keys: cleanup is the opener's job.
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type {
  Admission, AdmissionRequest, AdmissionStore, BudgetSpec, CredentialCandidate, RateLimitSpec, Reservation,
} from '../../src/limits/admission.js'

export interface Clock {
  /** epoch ms; tests move it, stores read it through their `now` option */
  now: number
}

export interface OpenedAdmissionStore {
  store: AdmissionStore
  cleanup(): Promise<void>
}

/** must build the store with `now: () => clock.now` */
export type OpenAdmissionStore = (clock: Clock) => Promise<OpenedAdmissionStore>

interface RateLimit {
  requests: number
  per_seconds: number
  burst?: number
}

/** one key (and its customer) calling one partner, with ids no other case shares */
interface Caller {
  keyId: string
  customer: string
  owner: string
  partner: string
}

interface Parts {
  limits?: readonly RateLimitSpec[]
  budgets?: readonly BudgetSpec[]
  cost?: number
  credentials?: readonly CredentialCandidate[]
}

function unique (base: string): string {
  return `${base}-${randomBytes(5).toString('hex')}`
}

function caller (customer = unique('cust')): Caller {
  return { keyId: unique('key'), customer, owner: `customer:${customer}`, partner: unique('acme') }
}

/** another key of the same customer, calling the same partner */
function sibling (of: Caller): Caller {
  return { ...of, keyId: unique('key') }
}

/** what compile-limits builds from a policy's `{requests, per_seconds, burst?}` */
function rate (name: string, subject: string, limit: RateLimit): RateLimitSpec {
  return {
    name,
    subject,
    intervalMs: (limit.per_seconds * 1000) / limit.requests,
    burst: limit.burst ?? limit.requests,
    quota: limit.requests,
    windowSeconds: limit.per_seconds,
  }
}

function keyLimit (c: Caller, limit: RateLimit): RateLimitSpec {
  return rate('key', c.keyId, limit)
}

function customerLimit (c: Caller, limit: RateLimit): RateLimitSpec {
  return rate('customer', c.customer, limit)
}

function keyBudget (c: Caller, monthly: number): BudgetSpec {
  return { name: 'key', subject: c.keyId, monthly }
}

function customerBudget (c: Caller, monthly: number): BudgetSpec {
  return { name: 'customer', subject: c.customer, monthly }
}

function credential (id: string, limit: RateLimit | null): CredentialCandidate {
  return { id, quota: limit === null ? null : rate('credential', id, limit) }
}

function request (c: Caller, clock: Clock, parts: Parts): AdmissionRequest {
  return {
    limits: parts.limits ?? [],
    budgets: parts.budgets ?? [],
    cost: parts.cost ?? 1,
    credentials: parts.credentials ?? [],
    now: clock.now,
    groups: { owner: c.owner, partner: c.partner },
  }
}

function admitted (a: Admission): Extract<Admission, { ok: true }> {
  assert.ok(a.ok, `expected admission, got ${JSON.stringify(a)}`)
  return a
}

function refused (a: Admission, code: string, name: string): Extract<Admission, { ok: false }> {
  assert.ok(!a.ok, `expected ${code}, got ${JSON.stringify(a)}`)
  assert.equal(a.code, code)
  assert.equal(a.name, name)
  return a
}

function countOk (results: Admission[]): number {
  return results.filter((r) => r.ok).length
}

async function fire (store: AdmissionStore, n: number, req: AdmissionRequest): Promise<Admission[]> {
  return Promise.all(Array.from({ length: n }, () => store.admit(req)))
}

export function runAdmissionStoreContract (name: string, open: OpenAdmissionStore): void {
  /** a store of its own for one case, its clock at `iso` */
  async function setUp (t: TestContext, iso = '2026-03-15T12:00:00.000Z'): Promise<{ store: AdmissionStore; clock: Clock }> {
    const clock = { now: Date.parse(iso) }
    const opened = await open(clock)
    t.after(() => opened.cleanup())
    return { store: opened.store, clock }
  }

  describe(`AdmissionStore contract: ${name}`, () => {
    it('answers ping, and admits a request with nothing to check', async (t) => {
      const { store, clock } = await setUp(t)
      await store.ping()
      assert.deepEqual(await store.admit(request(caller(), clock, {})), { ok: true, credential: -1, tightest: null, reservation: null, grants: null, remaining: null })
    })

    describe('rate limits (GCRA)', () => {
      it('admits exactly the burst at one instant, counting remaining down, then refuses with Retry-After', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const req = (): AdmissionRequest => request(c, clock, { limits: [keyLimit(c, { requests: 10, per_seconds: 1, burst: 10 })] })
        for (let i = 0; i < 10; i++) {
          const a = admitted(await store.admit(req()))
          assert.deepEqual(a.tightest, { name: 'key', remaining: 9 - i, resetSeconds: 1 })
          assert.equal(a.reservation, null)
        }
        const no = refused(await store.admit(req()), 'rate_limited', 'key')
        assert.ok(no.retryAfterSeconds >= 1)
        assert.equal(no.retryAfterSeconds, 1)
        assert.deepEqual(no.tightest, { name: 'key', remaining: 0, resetSeconds: 1 })
      })

      it('lets one more in after one interval (100 ms), and the whole burst after the window', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const req = (): AdmissionRequest => request(c, clock, { limits: [keyLimit(c, { requests: 10, per_seconds: 1 })] })
        for (let i = 0; i < 10; i++) admitted(await store.admit(req()))
        refused(await store.admit(req()), 'rate_limited', 'key')
        clock.now += 99
        refused(await store.admit(req()), 'rate_limited', 'key')
        clock.now += 1
        assert.deepEqual(admitted(await store.admit(req())).tightest, { name: 'key', remaining: 0, resetSeconds: 1 })
        refused(await store.admit(req()), 'rate_limited', 'key')
        clock.now += 1000
        for (let i = 0; i < 10; i++) admitted(await store.admit(req()))
        refused(await store.admit(req()), 'rate_limited', 'key')
      })

      it('treats a burst smaller than requests as a smaller bucket at the same rate', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const req = (): AdmissionRequest => request(c, clock, { limits: [keyLimit(c, { requests: 10, per_seconds: 1, burst: 3 })] })
        assert.deepEqual(admitted(await store.admit(req())).tightest, { name: 'key', remaining: 2, resetSeconds: 1 })
        admitted(await store.admit(req()))
        assert.deepEqual(admitted(await store.admit(req())).tightest, { name: 'key', remaining: 0, resetSeconds: 1 })
        assert.equal(refused(await store.admit(req()), 'rate_limited', 'key').retryAfterSeconds, 1)
        clock.now += 100
        admitted(await store.admit(req()))
        refused(await store.admit(req()), 'rate_limited', 'key')
        clock.now += 10_000
        for (let i = 0; i < 3; i++) admitted(await store.admit(req()))
        refused(await store.admit(req()), 'rate_limited', 'key')
      })

      it('keeps fractional intervals exact: 3 per second lets the 4th in after 334 ms, not 333', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const req = (): AdmissionRequest => request(c, clock, { limits: [keyLimit(c, { requests: 3, per_seconds: 1 })] })
        for (let i = 0; i < 3; i++) admitted(await store.admit(req()))
        refused(await store.admit(req()), 'rate_limited', 'key')
        clock.now += 333
        refused(await store.admit(req()), 'rate_limited', 'key')
        clock.now += 1
        admitted(await store.admit(req()))
      })

      it('names the tighter of key and customer limits, in the tightest state and when it refuses', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const req = (): AdmissionRequest => request(c, clock, {
          limits: [keyLimit(c, { requests: 10, per_seconds: 1 }), customerLimit(c, { requests: 3, per_seconds: 1 })],
        })
        assert.deepEqual(admitted(await store.admit(req())).tightest, { name: 'customer', remaining: 2, resetSeconds: 1 })
        admitted(await store.admit(req()))
        admitted(await store.admit(req()))
        const no = refused(await store.admit(req()), 'rate_limited', 'customer')
        assert.equal(no.retryAfterSeconds, 1)
        assert.equal(no.tightest?.name, 'customer')
      })

      it('shares the customer limit between the keys of one customer', async (t) => {
        const { store, clock } = await setUp(t)
        const a = caller()
        const b = sibling(a)
        const req = (c: Caller): AdmissionRequest => request(c, clock, {
          limits: [keyLimit(c, { requests: 10, per_seconds: 1 }), customerLimit(c, { requests: 4, per_seconds: 1 })],
        })
        admitted(await store.admit(req(a)))
        admitted(await store.admit(req(b)))
        admitted(await store.admit(req(a)))
        admitted(await store.admit(req(b)))
        refused(await store.admit(req(a)), 'rate_limited', 'customer')
        refused(await store.admit(req(b)), 'rate_limited', 'customer')
      })

      it('takes nothing from the key limit when the customer limit refuses (all or nothing)', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const key = keyLimit(c, { requests: 5, per_seconds: 1 })
        const both = (): AdmissionRequest => request(c, clock, { limits: [key, customerLimit(c, { requests: 2, per_seconds: 1 })] })
        admitted(await store.admit(both()))
        admitted(await store.admit(both()))
        for (let i = 0; i < 10; i++) refused(await store.admit(both()), 'rate_limited', 'customer')
        // the key alone: 2 of its 5 were taken, the 10 refusals took none
        assert.deepEqual(admitted(await store.admit(request(c, clock, { limits: [key] }))).tightest,
          { name: 'key', remaining: 2, resetSeconds: 1 })
      })

      it('takes no budget units when a rate limit refuses', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const budget = keyBudget(c, 100)
        const req = (): AdmissionRequest => request(c, clock, { limits: [keyLimit(c, { requests: 1, per_seconds: 10 })], budgets: [budget], cost: 10 })
        admitted(await store.admit(req()))
        for (let i = 0; i < 5; i++) refused(await store.admit(req()), 'rate_limited', 'key')
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 10)
      })
    })

    describe('budgets', () => {
      it('admits up to the exact limit in cost units; the next waits for the next UTC month', async (t) => {
        const { store, clock } = await setUp(t, '2026-03-15T12:00:00.000Z')
        const c = caller()
        const budget = keyBudget(c, 100)
        const req = (cost: number): AdmissionRequest => request(c, clock, { budgets: [budget], cost })
        for (let i = 0; i < 3; i++) {
          const a = admitted(await store.admit(req(30)))
          assert.deepEqual(a.reservation, { owner: c.owner, budgets: [budget], cost: 30, month: '2026-03' })
          assert.equal(a.tightest, null)
        }
        const no = refused(await store.admit(req(30)), 'budget_exceeded', 'key')
        // 16.5 days to 2026-04-01T00:00:00Z
        assert.equal(no.retryAfterSeconds, 1_425_600)
        assert.equal(no.tightest, null)
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 90)
        admitted(await store.admit(req(10)))
        refused(await store.admit(req(1)), 'budget_exceeded', 'key')
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 100)
      })

      it('charges key and customer budgets together; the one that runs out names itself and nothing is taken', async (t) => {
        const { store, clock } = await setUp(t)
        const a = caller()
        const b = sibling(a)
        const req = (c: Caller, cost: number): AdmissionRequest =>
          request(c, clock, { budgets: [keyBudget(c, 50), customerBudget(c, 80)], cost })
        admitted(await store.admit(req(a, 40)))
        refused(await store.admit(req(a, 20)), 'budget_exceeded', 'key')
        admitted(await store.admit(req(b, 30)))
        refused(await store.admit(req(b, 20)), 'budget_exceeded', 'customer')
        assert.equal(await store.budgetUsed(a.owner, keyBudget(a, 50), '2026-03'), 40)
        assert.equal(await store.budgetUsed(b.owner, keyBudget(b, 50), '2026-03'), 30)
        assert.equal(await store.budgetUsed(a.owner, customerBudget(a, 80), '2026-03'), 70)
        admitted(await store.admit(req(b, 10)))
        assert.equal(await store.budgetUsed(a.owner, customerBudget(a, 80), '2026-03'), 80)
      })

      it('takes no rate-limit room when a budget refuses', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const key = keyLimit(c, { requests: 3, per_seconds: 1 })
        const req = (): AdmissionRequest => request(c, clock, { limits: [key], budgets: [keyBudget(c, 10)], cost: 10 })
        admitted(await store.admit(req()))
        refused(await store.admit(req()), 'budget_exceeded', 'key')
        refused(await store.admit(req()), 'budget_exceeded', 'key')
        assert.deepEqual(admitted(await store.admit(request(c, clock, { limits: [key] }))).tightest,
          { name: 'key', remaining: 1, resetSeconds: 1 })
      })

      it('reports the tightest rate limit on a budget refusal, as the last admitted request left it', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const key = keyLimit(c, { requests: 10, per_seconds: 60 })
        const customer = customerLimit(c, { requests: 100, per_seconds: 60 })
        const req = (): AdmissionRequest => request(c, clock, { limits: [key, customer], budgets: [keyBudget(c, 2)], cost: 1 })
        admitted(await store.admit(req()))
        const last = admitted(await store.admit(req())).tightest
        assert.deepEqual(last, { name: 'key', remaining: 8, resetSeconds: 12 })
        // a 429 for a budget still carries RateLimit with the room left on the tightest limit (the refused request took none)
        assert.deepEqual(refused(await store.admit(req()), 'budget_exceeded', 'key').tightest, last)
      })

      it('gives refunded units back, never below zero', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const key = keyBudget(c, 100)
        const customer = customerBudget(c, 1000)
        const req = (cost: number): AdmissionRequest => request(c, clock, { budgets: [key, customer], cost })
        const first = admitted(await store.admit(req(30))).reservation!
        admitted(await store.admit(req(30)))
        admitted(await store.admit(req(30)))
        refused(await store.admit(req(30)), 'budget_exceeded', 'key')
        await store.refund(first)
        assert.equal(await store.budgetUsed(c.owner, key, '2026-03'), 60)
        assert.equal(await store.budgetUsed(c.owner, customer, '2026-03'), 60)
        const last = admitted(await store.admit(req(40))).reservation!
        assert.equal(await store.budgetUsed(c.owner, key, '2026-03'), 100)
        // refunding more than was taken stops at zero: it never turns into extra budget
        for (let i = 0; i < 5; i++) await store.refund(last)
        assert.equal(await store.budgetUsed(c.owner, key, '2026-03'), 0)
        assert.equal(await store.budgetUsed(c.owner, customer, '2026-03'), 0)
        admitted(await store.admit(req(100)))
        refused(await store.admit(req(1)), 'budget_exceeded', 'key')
      })

      it('reports 0 used for a budget nothing was charged to, and takes nothing for cost 0', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const budget = keyBudget(c, 10)
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 0)
        const a = admitted(await store.admit(request(c, clock, { budgets: [budget], cost: 0 })))
        assert.equal(a.reservation, null)
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 0)
      })

      it('starts a new month at 00:00 UTC on the 1st', async (t) => {
        const { store, clock } = await setUp(t, '2026-01-31T23:59:59.500Z')
        const c = caller()
        const budget = keyBudget(c, 100)
        const req = (): AdmissionRequest => request(c, clock, { budgets: [budget], cost: 100 })
        const january = admitted(await store.admit(req())).reservation!
        assert.equal(january.month, '2026-01')
        assert.equal(refused(await store.admit(req()), 'budget_exceeded', 'key').retryAfterSeconds, 1)
        clock.now = Date.parse('2026-02-01T00:00:00.000Z')
        assert.equal(admitted(await store.admit(req())).reservation?.month, '2026-02')
        assert.equal(refused(await store.admit(req()), 'budget_exceeded', 'key').retryAfterSeconds, 28 * 86_400)
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-01'), 100)
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-02'), 100)
        // a late refund goes back to the month it was taken from
        await store.refund(january)
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-01'), 0)
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-02'), 100)
      })
    })

    describe('credential quotas', () => {
      it('takes the first candidate with room, in order; all spent → upstream_quota_exceeded after the soonest', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const slow = credential(unique('cred'), { requests: 1, per_seconds: 10, burst: 2 })
        const fast = credential(unique('cred'), { requests: 1, per_seconds: 2, burst: 1 })
        const req = (): AdmissionRequest => request(c, clock, { credentials: [slow, fast] })
        assert.equal(admitted(await store.admit(req())).credential, 0)
        assert.equal(admitted(await store.admit(req())).credential, 0)
        assert.equal(admitted(await store.admit(req())).credential, 1)
        const no = refused(await store.admit(req()), 'upstream_quota_exceeded', 'credential')
        // `fast` has room again in 2 s, `slow` only in 10 s
        assert.equal(no.retryAfterSeconds, 2)
        assert.equal(no.tightest, null, 'no rate limit of the key applies')
        clock.now += 2000
        assert.equal(admitted(await store.admit(req())).credential, 1)
        refused(await store.admit(req()), 'upstream_quota_exceeded', 'credential')
        clock.now += 8000
        assert.equal(admitted(await store.admit(req())).credential, 0)
      })

      it('reports the tightest rate limit on a quota refusal, and takes none of its room', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const key = keyLimit(c, { requests: 10, per_seconds: 60 })
        const only = credential(unique('cred'), { requests: 1, per_seconds: 60 })
        const req = (): AdmissionRequest => request(c, clock, { limits: [key], credentials: [only] })
        const last = admitted(await store.admit(req())).tightest
        assert.deepEqual(last, { name: 'key', remaining: 9, resetSeconds: 6 })
        assert.deepEqual(refused(await store.admit(req()), 'upstream_quota_exceeded', 'credential').tightest, last)
        assert.deepEqual(refused(await store.admit(req()), 'upstream_quota_exceeded', 'credential').tightest, last)
      })

      it('shares a credential quota between callers of the partner, whatever their owner', async (t) => {
        const { store, clock } = await setUp(t)
        const a = caller()
        const b = { ...caller(), partner: a.partner }
        const only = credential(unique('cred'), { requests: 2, per_seconds: 60 })
        admitted(await store.admit(request(a, clock, { credentials: [only] })))
        admitted(await store.admit(request(b, clock, { credentials: [only] })))
        refused(await store.admit(request(a, clock, { credentials: [only] })), 'upstream_quota_exceeded', 'credential')
        refused(await store.admit(request(b, clock, { credentials: [only] })), 'upstream_quota_exceeded', 'credential')
      })

      it('always takes a candidate without quota, and charges nothing to the ones after it', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const limited = credential(unique('cred'), { requests: 1, per_seconds: 10 })
        const free = credential(unique('cred'), null)
        for (let i = 0; i < 50; i++) {
          assert.equal(admitted(await store.admit(request(c, clock, { credentials: [free, limited] }))).credential, 0)
        }
        assert.equal(admitted(await store.admit(request(c, clock, { credentials: [limited, free] }))).credential, 0)
        for (let i = 0; i < 50; i++) {
          assert.equal(admitted(await store.admit(request(c, clock, { credentials: [limited, free] }))).credential, 1)
        }
      })

      it('takes no key or customer budget when every quota is spent', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const key = keyBudget(c, 100)
        const customer = customerBudget(c, 100)
        const only = credential(unique('cred'), { requests: 1, per_seconds: 10 })
        const req = (): AdmissionRequest => request(c, clock, {
          limits: [keyLimit(c, { requests: 100, per_seconds: 1 })], budgets: [key, customer], cost: 10, credentials: [only],
        })
        const a = admitted(await store.admit(req()))
        assert.equal(a.credential, 0)
        assert.equal(a.tightest?.name, 'key')
        for (let i = 0; i < 5; i++) {
          const no = refused(await store.admit(req()), 'upstream_quota_exceeded', 'credential')
          assert.equal(no.retryAfterSeconds, 10)
        }
        assert.equal(await store.budgetUsed(c.owner, key, '2026-03'), 10)
        assert.equal(await store.budgetUsed(c.owner, customer, '2026-03'), 10)
      })

      it('takes no key or customer rate-limit room when every quota is spent', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const key = keyLimit(c, { requests: 2, per_seconds: 10 })
        const customer = customerLimit(c, { requests: 2, per_seconds: 10 })
        const only = credential(unique('cred'), { requests: 1, per_seconds: 10 })
        admitted(await store.admit(request(c, clock, { limits: [key, customer], credentials: [only] })))
        for (let i = 0; i < 3; i++) {
          refused(await store.admit(request(c, clock, { limits: [key, customer], credentials: [only] })), 'upstream_quota_exceeded', 'credential')
        }
        // without the credential: one of each limit's two was taken, the refusals took none
        assert.deepEqual(admitted(await store.admit(request(c, clock, { limits: [key, customer] }))).tightest,
          { name: 'key', remaining: 0, resetSeconds: 10 })
      })
    })

    describe('exact under concurrency', () => {
      it('400 admits at once against a budget of 100 at cost 1: exactly 100 admitted', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const budget = keyBudget(c, 100)
        const results = await fire(store, 400, request(c, clock, { budgets: [budget], cost: 1 }))
        assert.equal(countOk(results), 100)
        assert.ok(results.every((r) => r.ok || r.code === 'budget_exceeded'))
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 100)
      })

      it('400 admits at once against a burst of 50 on a frozen clock: exactly 50 admitted', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const results = await fire(store, 400, request(c, clock, { limits: [keyLimit(c, { requests: 50, per_seconds: 10, burst: 50 })] }))
        assert.equal(countOk(results), 50)
        assert.ok(results.every((r) => r.ok || r.code === 'rate_limited'))
      })

      it('400 admits at once against a credential quota of 20: exactly 20 admitted, 20 units charged', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const budget = keyBudget(c, 100)
        const only = credential(unique('cred'), { requests: 20, per_seconds: 60 })
        const results = await fire(store, 400, request(c, clock, { budgets: [budget], cost: 1, credentials: [only] }))
        assert.equal(countOk(results), 20)
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 20)
      })
    })

    describe('leases', () => {
      it('grants lease units on top of an admitted decision: at most 1/32 of a budget\'s remainder, counted as used at once', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const budget = keyBudget(c, 20_000)
        const a = admitted(await store.admit({ ...request(c, clock, { budgets: [budget], cost: 1 }), wants: [5000] }))
        // (20000 - 1) / 32 = 624
        assert.deepEqual(a.grants, [624])
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 625)
        // no more than asked, either
        assert.deepEqual(admitted(await store.admit({ ...request(c, clock, { budgets: [budget], cost: 1 }), wants: [5] })).grants, [5])
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 631)
      })

      it('grants nothing near the edge (a budget with under 1,024 units left) and nothing with a refusal', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        // 1,000 units left after the request: 31 would be 1/32, but the remainder is too small to lease
        const budget = keyBudget(c, 1001)
        assert.deepEqual(admitted(await store.admit({ ...request(c, clock, { budgets: [budget], cost: 1 }), wants: [500] })).grants, [0])
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 1)
        const limit = keyLimit(c, { requests: 1, per_seconds: 60 })
        admitted(await store.admit(request(c, clock, { limits: [limit] })))
        refused(await store.admit({ ...request(c, clock, { limits: [limit], budgets: [budget] }), wants: [10, 10] }), 'rate_limited', 'key')
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 1)
      })

      it('grants a rate limit at most 1/8 of its room, which then stays taken until given back', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const limit = keyLimit(c, { requests: 80, per_seconds: 60 })
        const a = admitted(await store.admit({ ...request(c, clock, { limits: [limit] }), wants: [100] }))
        // room 79 after the request: 79 / 8 = 9
        assert.deepEqual(a.grants, [9])
        assert.deepEqual(a.remaining, [79])
        for (let i = 0; i < 70; i++) admitted(await store.admit(request(c, clock, { limits: [limit] })))
        refused(await store.admit(request(c, clock, { limits: [limit] })), 'rate_limited', 'key')
        await store.giveBack([{ subject: { kind: 'rate', group: `o:${c.owner}`, spec: limit }, units: 4 }], clock.now)
        for (let i = 0; i < 4; i++) admitted(await store.admit(request(c, clock, { limits: [limit] })))
        refused(await store.admit(request(c, clock, { limits: [limit] })), 'rate_limited', 'key')
      })

      it('tops up leases outside any request, each subject on its own, across consistency groups', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const budget = keyBudget(c, 3200)
        const spent = keyBudget(c, 0)
        const quota = rate('credential', unique('cred'), { requests: 160, per_seconds: 60 })
        const results = await store.topUp([
          { subject: { kind: 'budget', owner: c.owner, spec: budget, month: '2026-03' }, want: 1000, step: 1 },
          { subject: { kind: 'rate', group: `p:${c.partner}`, spec: quota }, want: 1000, step: 1 },
          { subject: { kind: 'budget', owner: c.owner, spec: { ...spent, subject: unique('empty') }, month: '2026-03' }, want: 1000, step: 1 },
        ], clock.now)
        assert.deepEqual(results, [{ granted: 100, remaining: 0 }, { granted: 20, remaining: 140 }, { granted: 0, remaining: 0 }])
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 100)
        // the quota's 20 leased requests are gone from its room: 140 left for decisions
        const only = { id: quota.subject, quota }
        for (let i = 0; i < 140; i++) admitted(await store.admit(request(c, clock, { credentials: [only] })))
        refused(await store.admit(request(c, clock, { credentials: [only] })), 'upstream_quota_exceeded', 'credential')
      })

      it('takes back a lease\'s unspent budget units, never below zero', async (t) => {
        const { store, clock } = await setUp(t)
        const c = caller()
        const budget = keyBudget(c, 3200)
        const subject = { kind: 'budget', owner: c.owner, spec: budget, month: '2026-03' } as const
        assert.deepEqual(await store.topUp([{ subject, want: 50, step: 1 }], clock.now), [{ granted: 50, remaining: 0 }])
        // a budget's grant is a whole number of its requests' cost: 3150 left, 1/32 is 98, 14 × 7
        assert.deepEqual(await store.topUp([{ subject, want: 1000, step: 7 }], clock.now), [{ granted: 98, remaining: 0 }])
        await store.giveBack([{ subject, units: 98 }], clock.now)
        await store.giveBack([{ subject, units: 30 }], clock.now)
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 20)
        await store.giveBack([{ subject, units: 30 }], clock.now)
        assert.equal(await store.budgetUsed(c.owner, budget, '2026-03'), 0)
      })
    })

    it('hands back a reservation that names what it took', async (t) => {
      const { store, clock } = await setUp(t)
      const c = caller()
      const budgets = [keyBudget(c, 10), customerBudget(c, 10)]
      const a = admitted(await store.admit(request(c, clock, { budgets, cost: 3 })))
      const expected: Reservation = { owner: c.owner, budgets, cost: 3, month: '2026-03' }
      assert.deepEqual(a.reservation, expected)
    })
  })
}
