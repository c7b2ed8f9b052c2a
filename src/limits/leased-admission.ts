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
import type { Logger } from 'pino'
import { errorSummary } from '../errors.js'
import type { Invalidation } from '../process/invalidation.js'
import type {
  Admission, AdmissionRequest, AdmissionStore, BudgetSpec, LeaseReturn, LeaseTopUp, LeaseTopUpResult,
  LimitState, RateLimitSpec, Reservation,
} from './admission.js'
import { budgetMonth } from './budget-month.js'
import { Lease, type LeaseKind } from './lease.js'
import { LeaseStats } from './lease-stats.js'

/**
 * how often held leases are checked for idleness, lifetime and month: the returns of one check
 * go in one store call, and a round trip costs the store more than the returns in it
 */
const SWEEP_MS = 25
/**
 * a slow subject's lease idles in no less than four of its gaps between requests (hundreds of
 * ms): looking at it every sweep would cost more than it saves
 */
const SLOW_SWEEP_EVERY = 10
/** after a lease call failed, the time before leases are asked for again */
const ASK_AGAIN_AFTER_MS = 1000
/** a lease with nothing held and no request for this long is forgotten */
const FORGET_MS = 10_000

type ReturnReason = 'idle' | 'expired' | 'invalidated' | 'shutdown'

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
  /** every lease by its subject's storage name */
  readonly #leases = new Map<string, Lease>()
  /** leases holding units: the ones the sweep looks at… */
  readonly #holding = new Set<Lease>()
  /** …every time for these (hot subjects' leases), every SLOW_SWEEP_EVERY-th time for the rest */
  readonly #holdingFast = new Set<Lease>()
  #sweeps = 0
  /** spec object → its lease, so the hot path builds no names */
  readonly #bySpec = new WeakMap<object, Lease>()
  /** admitLocally's leases of the request in hand (it never runs twice at once: synchronous) */
  readonly #picked: Lease[] = []
  /** background top-ups asked in this event-loop turn */
  #topUps: Lease[] = []
  readonly #flushTopUps = (): void => this.#sendTopUps()
  readonly #sweepNow = (): void => this.#sweep()
  #sweepTimer: NodeJS.Timeout | null = null
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
  #forgetAt = 0

  constructor (store: AdmissionStore, options: LeasedAdmissionOptions) {
    this.#store = store
    this.#logger = options.logger
    this.#enabled = options.enabled
    this.stats = new LeaseStats()
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
      const lease = this.#rateLease(limits[i]!, 'o:', request.groups.owner, now)
      lease.see(now, 1)
      if (!lease.has(1, now)) enough = false
      picked[i] = lease
    }
    for (let i = 0; i < budgets.length; i++) {
      const lease = this.#budgetLease(budgets[i]!, request.groups.owner, month, now)
      lease.see(now, cost)
      if (cost > 0 && !lease.has(cost, now)) enough = false
      picked[limits.length + i] = lease
    }
    // only the first candidate (the round-robin pick) is tried here; the store tries the rest
    const quota = request.credentials.length === 0 ? null : request.credentials[0]!.quota
    if (quota !== null) {
      const lease = this.#rateLease(quota, 'p:', request.groups.partner, now)
      lease.see(now, 1)
      if (!lease.has(1, now)) enough = false
      picked[limits.length + budgets.length] = lease
    }
    if (!enough) {
      picked.length = 0
      return null
    }

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
    picked.length = 0
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
      for (let i = 0; i < nR; i++) any = this.#ask(this.#rateLease(request.limits[i]!, 'o:', request.groups.owner, now), 1, i, asked, wants, now) || any
      if (request.cost > 0) {
        for (let i = 0; i < nB; i++) any = this.#ask(this.#budgetLease(request.budgets[i]!, request.groups.owner, month, now), request.cost, nR + i, asked, wants, now) || any
      }
      for (let i = 0; i < request.credentials.length; i++) {
        const quota = request.credentials[i]!.quota
        if (quota !== null) any = this.#ask(this.#rateLease(quota, 'p:', request.groups.partner, now), 1, nR + nB + i, asked, wants, now) || any
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
      const lease = this.#bySpec.get(budget)
      if (lease !== undefined && lease.live && lease.expiresAt > now && reservation.cost <= lease.lastGrant &&
        lease.subject.kind === 'budget' && lease.subject.month === reservation.month) {
        lease.units += reservation.cost
        this.#hold(lease)
      } else {
        rest.push(budget)
      }
    }
    if (rest.length > 0) await this.#store.refund(rest.length === reservation.budgets.length ? reservation : { ...reservation, budgets: rest })
  }

  /** an admin change: the leases it may touch go back (any that is not a single key's: all) */
  invalidate (invalidation: Invalidation): void {
    this.#generation++
    const returns: LeaseReturn[] = []
    for (const lease of this.#holding) if (touchedBy(lease, invalidation)) this.#giveUp(lease, 'invalidated', returns)
    for (const [id, lease] of this.#leases) {
      if (!touchedBy(lease, invalidation)) continue
      lease.live = false
      this.#leases.delete(id)
    }
    this.#sendReturns(returns)
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
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer)
    this.#sweepTimer = null
    while (this.#calls.size > 0) await Promise.all(this.#calls)
    const returns: LeaseReturn[] = []
    for (const lease of this.#holding) this.#giveUp(lease, 'shutdown', returns)
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
    const out = new Map<LeaseKind, number>()
    for (const lease of this.#holding) out.set(lease.kind, (out.get(lease.kind) ?? 0) + lease.units)
    return out
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
    if (stale.length > 0) this.#sendReturns(stale)
  }

  /** a grant asked before an admin change, for a dropped lease, or arriving after close goes straight back */
  #stale (lease: Lease, generation: number): boolean {
    return generation !== this.#generation || !lease.live || this.#closed
  }

  #granted (lease: Lease, units: number, room: number, spec: RateLimitSpec | null, now: number): void {
    if (lease.units > 0 && now >= lease.expiresAt) {
      // past their lifetime and not swept yet: they go back rather than live on with the grant
      const returns: LeaseReturn[] = []
      this.#giveUp(lease, 'expired', returns)
      this.#sendReturns(returns)
    }
    // the limit is full again once its room (less the grant) has come back: (burst - room + units) intervals
    const fullMs = spec === null ? 0 : (spec.burst - room + units) * spec.intervalMs
    // the client's room includes what this worker still holds, which the store may count as
    // taken; never more than the burst (held units from a window that has passed are not)
    lease.granted(units, spec === null ? room : Math.min(spec.burst, room + lease.units), fullMs, now)
    this.stats.granted(lease.kind, units)
    this.#hold(lease)
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
      if (stale.length > 0) this.#sendReturns(stale)
    }, (err: unknown) => {
      for (const lease of asked) lease.pending = false
      this.#askLater()
      // the leases run dry and their requests go to the store, which fails them closed
      this.#logger.debug({ err: errorSummary(err) }, 'lease top-up failed')
    }).finally(() => this.#calls.delete(call))
    this.#calls.add(call)
  }

  #hold (lease: Lease): void {
    this.#holding.add(lease)
    if (!lease.slow) this.#holdingFast.add(lease)
    this.#sweepSoon()
  }

  /** the sweep runs while any lease is known: held ones go back, forgotten ones are dropped */
  #sweepSoon (): void {
    if (this.#sweepTimer === null && !this.#closed) {
      this.#sweepTimer = setInterval(this.#sweepNow, SWEEP_MS)
      this.#sweepTimer.unref()
    }
  }

  /** gives back what idle, expired or last month's leases hold; forgets long-unused ones */
  #sweep (): void {
    const now = performance.now()
    const month = this.#monthOf(Date.now())
    const returns: LeaseReturn[] = []
    for (const lease of ++this.#sweeps % SLOW_SWEEP_EVERY === 0 ? this.#holding : this.#holdingFast) {
      if (lease.units <= 0) {
        this.#holding.delete(lease)
        this.#holdingFast.delete(lease)
      } else if (now >= lease.expiresAt) {
        this.#giveUp(lease, 'expired', returns)
      } else if (lease.idle(now) || (lease.subject.kind === 'budget' && lease.subject.month !== month)) {
        this.#giveUp(lease, 'idle', returns)
      }
    }
    this.#sendReturns(returns)
    if (now >= this.#forgetAt) {
      this.#forgetAt = now + FORGET_MS
      for (const [id, lease] of this.#leases) {
        if (lease.units === 0 && !lease.pending && now - lease.lastSeen > FORGET_MS) {
          lease.live = false
          this.#leases.delete(id)
        }
      }
    }
    if (this.#leases.size === 0 && this.#holding.size === 0 && this.#sweepTimer !== null) {
      clearInterval(this.#sweepTimer)
      this.#sweepTimer = null
    }
  }

  #giveUp (lease: Lease, reason: ReturnReason, returns: LeaseReturn[]): void {
    if (lease.units > 0) {
      returns.push({ subject: lease.subject, units: lease.units })
      this.stats.returned(lease.kind, reason, lease.units)
    }
    lease.units = 0
    this.#holding.delete(lease)
    this.#holdingFast.delete(lease)
  }

  #sendReturns (returns: LeaseReturn[]): void {
    if (returns.length === 0) return
    this.stats.returnCalls++
    // not retried: a return that timed out may have been applied, and twice would overspend
    const call: Promise<void> = this.#store.giveBack(returns, Date.now()).catch((err: unknown) => {
      this.#logger.warn({ err: errorSummary(err), leases: returns.length }, 'could not give leased units back; they stay counted as used')
    }).finally(() => this.#calls.delete(call))
    this.#calls.add(call)
  }

  /** `scope` + `name` is the consistency group ('o:' and the owner, or 'p:' and the partner) */
  #rateLease (spec: RateLimitSpec, scope: 'o:' | 'p:', name: string, now: number): Lease {
    const known = this.#bySpec.get(spec)
    if (known !== undefined && known.live) return known
    const group = scope + name
    // the limit's numbers are part of the name: a recompiled context with other numbers gets a
    // lease of its own, and the old one, no longer used, idles and goes back
    const id = `r|${group}|${spec.name}|${spec.subject}|${spec.intervalMs}|${spec.burst}`
    let lease = this.#leases.get(id)
    if (lease === undefined) {
      lease = new Lease({ kind: 'rate', group, spec }, spec.name === 'key' ? 'key_rate' : spec.name === 'customer' ? 'customer_rate' : 'credential_quota', now)
      this.#leases.set(id, lease)
      this.#sweepSoon()
    }
    this.#bySpec.set(spec, lease)
    return lease
  }

  #budgetLease (spec: BudgetSpec, owner: string, month: string, now: number): Lease {
    const known = this.#bySpec.get(spec)
    if (known !== undefined && known.live && known.subject.kind === 'budget' && known.subject.month === month) return known
    const id = `b|${owner}|${spec.name}|${spec.subject}|${month}|${spec.monthly}`
    let lease = this.#leases.get(id)
    if (lease === undefined) {
      lease = new Lease({ kind: 'budget', owner, spec, month }, spec.name === 'key' ? 'key_budget' : 'customer_budget', now)
      this.#leases.set(id, lease)
      this.#sweepSoon()
    }
    this.#bySpec.set(spec, lease)
    return lease
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

/** a key's change touches that key's own leases; any other change touches every lease */
function touchedBy (lease: Lease, invalidation: Invalidation): boolean {
  return invalidation.kind !== 'key' || (lease.subject.spec.name === 'key' && lease.subject.spec.subject === invalidation.id)
}

function noop (): void {}
