// Admission by lease: each worker takes blocks of its hot limits from the shared store (Redis or
// SQLite) in advance and admits requests against them locally, so a hot key costs a store call
// per few hundred requests instead of one per request. docs/limits-and-budgets.md explains the
// design and its bounds:
//
//   shared store                      this worker
//   ┌──────────────────────────┐      ┌───────────────────────────────┐
//   │ budget used = spent+leased│─grant▶ lease: units, expiresAt, rate  │─▶ admitLocally: no call
//   │ GCRA TAT (leases ahead)   │◀return│ (idle, lifetime, admin change)│
//   └──────────────────────────┘      └───────────────────────────────┘
//
// - A request is admitted locally when every limit it needs has units here; otherwise the store
//   decides it exactly as without leases and, in the same call, may grant top-ups for the
//   limits that ran dry. A lease down to a quarter of its last grant asks for its next one in
//   the background, batched per event-loop turn.
// - The store caps each grant at a share of the room left, so near the edge grants stop and
//   every request is one exact decision again.
// - Budget units count as used from the moment they are leased: spent + leased never exceeds
//   the budget. Unspent units go back when the lease idles, reaches its lifetime, on any admin
//   change and at shutdown; a worker that dies holding units leaves them counted as spent.
//
// This file is the admission front (local admits, store decisions with top-ups, grants, refunds);
// the leases themselves, found by spec, swept and given back, are in lease-table.ts.
import type { Logger } from 'pino'
import { errorSummary } from '../errors.js'
import type { Invalidation } from '../store/invalidation.js'
import type {
  Admission, AdmissionRequest, AdmissionStore, BudgetSpec, LeaseReturn, LeaseTopUp, LeaseTopUpResult,
  LimitState, RateLimitSpec, Reservation,
} from './admission.js'
import { budgetMonth } from './budget-month.js'
import type { Lease, LeaseKind } from './lease.js'
import { LeaseStats } from './lease-stats.js'
import { LeaseTable } from './lease-table.js'

/** after a lease call failed, the time before leases are asked for again */
const ASK_AGAIN_AFTER_MS = 1000

export interface LeasedAdmissionOptions {
  logger: Logger
  /** false: every decision goes to the store, as without leases */
  enabled: boolean
}

export class LeasedAdmission implements AdmissionStore {
  readonly #store: AdmissionStore
  readonly #logger: Logger
  readonly #enabled: boolean
  readonly stats: LeaseStats
  /** this worker's leases and the units they hold */
  readonly #table: LeaseTable
  /**
   * admitLocally's leases of the request in hand (it never runs twice at once: synchronous);
   * overwritten, never emptied: emptying an array frees its storage, and the next request's
   * first write allocated it again
   */
  readonly #picked: Lease[] = []
  /** background top-ups asked in this event-loop turn */
  #topUps: Lease[] = []
  readonly #flushTopUps = (): void => this.#sendTopUps()
  /**
   * background top-ups and returns not answered yet: close() waits for them, so their grants go
   * back too and their returns are sent before the connection closes
   */
  readonly #calls = new Set<Promise<void>>()
  /** bumped by every admin change: grants asked before one are given straight back */
  #generation = 0
  /**
   * performance.now() before which no lease is asked for: a store call that failed or timed out
   * may still have granted what it asked, and those units stay counted as used, so a slow store
   * is not asked again at once
   */
  #askFrom = 0
  #closed = false
  #second = -1
  #month = ''

  constructor (store: AdmissionStore, options: LeasedAdmissionOptions) {
    this.#store = store
    this.#logger = options.logger
    this.#enabled = options.enabled
    this.stats = new LeaseStats()
    this.#table = new LeaseTable(store, this.stats, options.logger, this.#calls)
  }

  /**
   * HOT PATH: admits `request` from this worker's leases, or returns null when any limit it
   * needs has no units here (then `admit` asks the store). No allocation but the answer.
   */
  admitLocally (request: AdmissionRequest): Admission | null {
    if (!this.#enabled) return null
    const now = performance.now()
    const limits = request.limits
    const budgets = request.budgets
    const cost = request.cost
    const month = this.#monthOf(request.now)
    // the leases looked up by the check, reused by the take (one WeakMap lookup each)
    const picked = this.#picked
    let enough = true
    for (let i = 0; i < limits.length; i++) {
      const lease = this.#table.rateLease(limits[i]!, 'o:', request.groups.owner, now)
      lease.see(now, 1)
      if (!lease.has(1, now)) enough = false
      picked[i] = lease
    }
    for (let i = 0; i < budgets.length; i++) {
      const lease = this.#table.budgetLease(budgets[i]!, request.groups.owner, month, now)
      lease.see(now, cost)
      if (cost > 0 && !lease.has(cost, now)) enough = false
      picked[limits.length + i] = lease
    }
    // only the first candidate (the round-robin pick) is tried here; the store tries the rest
    const quota = request.credentials.length === 0 ? null : request.credentials[0]!.quota
    if (quota !== null) {
      const lease = this.#table.rateLease(quota, 'p:', request.groups.partner, now)
      lease.see(now, 1)
      if (!lease.has(1, now)) enough = false
      picked[limits.length + budgets.length] = lease
    }
    if (!enough) return null

    // the RateLimit header's limit: the one with the least room as this worker last heard it
    let tight: Lease | null = null
    let tightIndex = -1
    let tightRemaining = 0
    for (let i = 0; i < limits.length; i++) {
      const lease = picked[i]!
      this.#take(lease, 1, now)
      const remaining = Math.max(0, lease.room - lease.takenSinceGrant)
      if (tight === null || remaining < tightRemaining) {
        tight = lease
        tightIndex = i
        tightRemaining = remaining
      }
    }
    const tightest: LimitState | null = tight === null
      ? null
      : { name: limits[tightIndex]!.name, remaining: tightRemaining, resetSeconds: Math.max(0, Math.ceil((tight.fullAt - now) / 1000)) }
    if (cost > 0) for (let i = 0; i < budgets.length; i++) this.#take(picked[limits.length + i]!, cost, now)
    if (quota !== null) this.#take(picked[limits.length + budgets.length]!, 1, now)
    this.stats.local++
    return {
      ok: true,
      credential: request.credentials.length === 0 ? -1 : 0,
      tightest,
      reservation: budgets.length === 0 || cost === 0 ? null : { owner: request.groups.owner, budgets, cost, month },
      grants: null,
      remaining: null,
    }
  }

  /**
   * The store decides the request (exactly as without leases), and grants top-ups for the
   * limits that ran dry here. A refusal the leases here can still cover is admitted here.
   */
  async admit (request: AdmissionRequest): Promise<Admission> {
    this.stats.store++
    if (!this.#enabled) return await this.#store.admit(request)
    const now = performance.now()
    const month = this.#monthOf(request.now)
    const nR = request.limits.length
    const nB = request.budgets.length
    const asked: Array<Lease | null> = new Array(nR + nB + request.credentials.length).fill(null)
    const wants = new Array<number>(asked.length).fill(0)
    let any = false
    if (now >= this.#askFrom) {
      for (let i = 0; i < nR; i++) any = this.#ask(this.#table.rateLease(request.limits[i]!, 'o:', request.groups.owner, now), 1, i, asked, wants, now) || any
      if (request.cost > 0) {
        for (let i = 0; i < nB; i++) any = this.#ask(this.#table.budgetLease(request.budgets[i]!, request.groups.owner, month, now), request.cost, nR + i, asked, wants, now) || any
      }
      for (let i = 0; i < request.credentials.length; i++) {
        const quota = request.credentials[i]!.quota
        if (quota !== null) any = this.#ask(this.#table.rateLease(quota, 'p:', request.groups.partner, now), 1, nR + nB + i, asked, wants, now) || any
      }
    }
    if (!any) {
      const admission = await this.#store.admit(request)
      return admission.ok ? admission : this.admitLocally(request) ?? admission
    }
    const generation = this.#generation
    const decided = this.#store.admit({ ...request, wants })
    // tracked like a background call: close() waits for it, so what it grants goes back too
    const call = decided.then(noop, noop).finally(() => this.#calls.delete(call))
    this.#calls.add(call)
    let admission: Admission
    try {
      admission = await decided
    } catch (err) {
      for (const lease of asked) if (lease !== null) lease.pending = false
      this.#askLater()
      throw err
    }
    this.#applyGrants(request, admission, asked, generation)
    if (admission.ok) return admission
    return this.admitLocally(request) ?? admission
  }

  async refund (reservation: Reservation): Promise<void> {
    // A refund no larger than what an active lease here was last granted stays on this worker
    // (the units are still counted as used), sparing a hot key's 5xx storm a store call each;
    // any other goes back to the store, where every worker sees it at once.
    const rest: BudgetSpec[] = []
    const now = performance.now()
    for (const budget of reservation.budgets) {
      const lease = this.#table.leaseOf(budget)
      if (lease !== undefined && lease.live && lease.expiresAt > now && reservation.cost <= lease.lastGrant &&
        lease.subject.kind === 'budget' && lease.subject.month === reservation.month) {
        lease.units += reservation.cost
        this.#table.hold(lease)
      } else {
        rest.push(budget)
      }
    }
    if (rest.length > 0) await this.#store.refund(rest.length === reservation.budgets.length ? reservation : { ...reservation, budgets: rest })
  }

  /** an admin change: the leases it may touch go back (any that is not a single key's: all) */
  invalidate (invalidation: Invalidation): void {
    this.#generation++
    this.#table.invalidate(invalidation)
  }

  topUp (items: readonly LeaseTopUp[], now: number): Promise<LeaseTopUpResult[]> {
    return this.#store.topUp(items, now)
  }

  giveBack (items: readonly LeaseReturn[], now: number): Promise<void> {
    return this.#store.giveBack(items, now)
  }

  budgetUsed (owner: string, budget: Pick<BudgetSpec, 'name' | 'subject'>, month: string): Promise<number> {
    return this.#store.budgetUsed(owner, budget, month)
  }

  ping (): Promise<void> {
    return this.#store.ping()
  }

  /** gives back every unit held, then closes the store */
  async close (): Promise<void> {
    this.#closed = true
    this.#table.stopSweeping()
    while (this.#calls.size > 0) await Promise.all(this.#calls)
    const returns = this.#table.giveUpAll('shutdown')
    if (returns.length > 0) {
      try {
        await this.#store.giveBack(returns, Date.now())
      } catch (err) {
        this.#logger.warn({ err: errorSummary(err), leases: returns.length }, 'could not give leased units back at shutdown; they stay counted as used')
      }
    }
    await this.#store.close()
  }

  /** units currently held, by kind (for the metrics) */
  heldUnits (): Map<LeaseKind, number> {
    return this.#table.heldUnits()
  }

  /** HOT PATH: takes units here; a lease running low asks for its next grant in the background */
  #take (lease: Lease, units: number, now: number): void {
    lease.units -= units
    lease.takenSinceGrant++
    if (lease.low() && now >= this.#askFrom) {
      const want = lease.want(now)
      if (want > 0) {
        lease.pending = true
        if (this.#topUps.push(lease) === 1) setImmediate(this.#flushTopUps)
      }
    }
  }

  #askLater (): void {
    this.#askFrom = performance.now() + ASK_AGAIN_AFTER_MS
  }

  /** marks `lease` to be topped up by a decision when it cannot cover `need` here */
  #ask (lease: Lease, need: number, at: number, asked: Array<Lease | null>, wants: number[], now: number): boolean {
    if (lease.pending || lease.has(need, now)) return false
    const want = lease.want(now)
    if (want === 0) return false
    lease.pending = true
    asked[at] = lease
    wants[at] = want
    return true
  }

  #applyGrants (request: AdmissionRequest, admission: Admission, asked: ReadonlyArray<Lease | null>, generation: number): void {
    const now = performance.now()
    const grants = admission.ok ? admission.grants : null
    const stale: LeaseReturn[] = []
    const nR = request.limits.length
    for (let i = 0; i < asked.length; i++) {
      const lease = asked[i]
      if (lease === null) continue
      lease.pending = false
      const units = grants === null ? 0 : grants[i]!
      if (units === 0) continue
      if (this.#stale(lease, generation)) {
        stale.push({ subject: lease.subject, units })
        continue
      }
      const spec = i < nR ? request.limits[i]! : i >= nR + request.budgets.length ? request.credentials[i - nR - request.budgets.length]!.quota : null
      const room = i < nR && admission.ok && admission.remaining !== null ? admission.remaining[i]! : 0
      this.#granted(lease, units, room, spec, now)
    }
    if (stale.length > 0) this.#table.sendReturns(stale)
  }

  /** a grant asked before an admin change, for a dropped lease, or arriving after close goes straight back */
  #stale (lease: Lease, generation: number): boolean {
    return generation !== this.#generation || !lease.live || this.#closed
  }

  #granted (lease: Lease, units: number, room: number, spec: RateLimitSpec | null, now: number): void {
    if (lease.units > 0 && now >= lease.expiresAt) {
      // past their lifetime and not swept yet: they go back rather than live on with the grant
      const returns: LeaseReturn[] = []
      this.#table.giveUp(lease, 'expired', returns)
      this.#table.sendReturns(returns)
    }
    // the limit is full again once its room (less the grant) has come back: (burst - room + units) intervals
    const fullMs = spec === null ? 0 : (spec.burst - room + units) * spec.intervalMs
    // the client's room includes what this worker still holds, which the store may count as
    // taken; never more than the burst (held units from a window that has passed are not)
    lease.granted(units, spec === null ? room : Math.min(spec.burst, room + lease.units), fullMs, now)
    this.stats.granted(lease.kind, units)
    this.#table.hold(lease)
  }

  #sendTopUps (): void {
    const leases = this.#topUps
    this.#topUps = []
    const now = performance.now()
    const items: LeaseTopUp[] = []
    const asked: Lease[] = []
    for (const lease of leases) {
      const want = lease.live ? lease.want(now) : 0
      if (want === 0) {
        lease.pending = false
        continue
      }
      items.push({ subject: lease.subject, want, step: lease.subject.kind === 'budget' ? Math.max(1, lease.cost) : 1 })
      asked.push(lease)
    }
    if (items.length === 0) return
    this.stats.topUpCalls++
    const generation = this.#generation
    const call: Promise<void> = this.#store.topUp(items, Date.now()).then((results) => {
      const at = performance.now()
      const stale: LeaseReturn[] = []
      for (let i = 0; i < asked.length; i++) {
        const lease = asked[i]!
        lease.pending = false
        const { granted, remaining } = results[i]!
        if (granted === 0) continue
        if (this.#stale(lease, generation)) {
          stale.push({ subject: lease.subject, units: granted })
          continue
        }
        this.#granted(lease, granted, remaining + granted, lease.subject.kind === 'rate' ? lease.subject.spec : null, at)
      }
      if (stale.length > 0) this.#table.sendReturns(stale)
    }, (err: unknown) => {
      for (const lease of asked) lease.pending = false
      this.#askLater()
      // the leases run dry and their requests go to the store, which fails them closed
      this.#logger.debug({ err: errorSummary(err) }, 'lease top-up failed')
    }).finally(() => this.#calls.delete(call))
    this.#calls.add(call)
  }

  /** the budget month of `epochMs`, worked out once a second */
  #monthOf (epochMs: number): string {
    const second = Math.floor(epochMs / 1000)
    if (second !== this.#second) {
      this.#second = second
      this.#month = budgetMonth(epochMs)
    }
    return this.#month
  }
}

function noop (): void {}
