// The leases one worker knows (LeasedAdmission admits against them): each found by its limit's
// spec object, so the hot path builds no names; the ones holding units looked at by a sweep and
// given back when idle, past their lifetime or last month's, on an admin change and at shutdown;
// long-unused ones forgotten.
import type { Logger } from 'pino'
import { errorSummary } from '../errors.js'
import type { Invalidation } from '../store/invalidation.js'
import type { AdmissionStore, BudgetSpec, LeaseReturn, RateLimitSpec } from './admission.js'
import { budgetMonth } from './budget-month.js'
import { Lease, type LeaseKind } from './lease.js'
import type { LeaseStats } from './lease-stats.js'

/**
 * how often held leases are checked for idleness, lifetime and month: the returns of one check
 * go in one store call, and a round trip costs the store more than the returns in it
 */
const SWEEP_MS = 25
/**
 * slow subjects' leases are looked at every this many sweeps (a second): there are thousands of
 * them with many keys, each lives up to SLOW_LEASE_LIFETIME_MS, and looking at all of them every
 * sweep cost more than their returns save
 */
const SLOW_SWEEP_EVERY = 40
/** a lease with nothing held and no request for this long is forgotten */
const FORGET_MS = 10_000

export type ReturnReason = 'idle' | 'expired' | 'invalidated' | 'shutdown'

export class LeaseTable {
  readonly #store: AdmissionStore
  readonly #logger: Logger
  readonly #stats: LeaseStats
  /** store calls not answered yet, shared with LeasedAdmission: its close() waits for them */
  readonly #calls: Set<Promise<void>>
  /** every lease by its subject's storage name */
  readonly #leases = new Map<string, Lease>()
  /** leases holding units: the ones the sweep looks at… */
  readonly #holding = new Set<Lease>()
  /** …every time for these (hot subjects' leases), every SLOW_SWEEP_EVERY-th time for the rest */
  readonly #holdingFast = new Set<Lease>()
  #sweeps = 0
  /** spec object → its lease, so the hot path builds no names */
  readonly #bySpec = new WeakMap<object, Lease>()
  readonly #sweepNow = (): void => this.#sweep()
  #sweepTimer: NodeJS.Timeout | null = null
  #closed = false
  #forgetAt = 0

  constructor (store: AdmissionStore, stats: LeaseStats, logger: Logger, calls: Set<Promise<void>>) {
    this.#store = store
    this.#stats = stats
    this.#logger = logger
    this.#calls = calls
  }

  /** HOT PATH: `scope` + `name` is the consistency group ('o:' and the owner, or 'p:' and the partner) */
  rateLease (spec: RateLimitSpec, scope: 'o:' | 'p:', name: string, now: number): Lease {
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

  /** HOT PATH: the lease on `spec` for `owner` in `month` */
  budgetLease (spec: BudgetSpec, owner: string, month: string, now: number): Lease {
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

  /** the lease last used for `spec`, if any (it may have been dropped since: see `live`) */
  leaseOf (spec: BudgetSpec): Lease | undefined {
    return this.#bySpec.get(spec)
  }

  /** `lease` holds units now: the sweep looks at it */
  hold (lease: Lease): void {
    this.#holding.add(lease)
    if (!lease.slow) this.#holdingFast.add(lease)
    this.#sweepSoon()
  }

  /** adds what `lease` holds to `returns` (for one sendReturns) and empties it */
  giveUp (lease: Lease, reason: ReturnReason, returns: LeaseReturn[]): void {
    if (lease.units > 0) {
      returns.push({ subject: lease.subject, units: lease.units })
      this.#stats.returned(lease.kind, reason, lease.units)
    }
    lease.units = 0
    this.#holding.delete(lease)
    this.#holdingFast.delete(lease)
  }

  sendReturns (returns: LeaseReturn[]): void {
    if (returns.length === 0) return
    this.#stats.returnCalls++
    // not retried: a return that timed out may have been applied, and twice would overspend
    const call: Promise<void> = this.#store.giveBack(returns, Date.now()).catch((err: unknown) => {
      this.#logger.warn({ err: errorSummary(err), leases: returns.length }, 'could not give leased units back; they stay counted as used')
    }).finally(() => this.#calls.delete(call))
    this.#calls.add(call)
  }

  /** an admin change: the leases it may touch go back and are dropped (any that is not a single key's: all) */
  invalidate (invalidation: Invalidation): void {
    const returns: LeaseReturn[] = []
    for (const lease of this.#holding) if (touchedBy(lease, invalidation)) this.giveUp(lease, 'invalidated', returns)
    for (const [id, lease] of this.#leases) {
      if (!touchedBy(lease, invalidation)) continue
      lease.live = false
      this.#leases.delete(id)
    }
    this.sendReturns(returns)
  }

  /** no more sweeps (closing) */
  stopSweeping (): void {
    this.#closed = true
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer)
    this.#sweepTimer = null
  }

  /** gives up every lease holding units: what they held, to be given back */
  giveUpAll (reason: ReturnReason): LeaseReturn[] {
    const returns: LeaseReturn[] = []
    for (const lease of this.#holding) this.giveUp(lease, reason, returns)
    return returns
  }

  /** units currently held, by kind (for the metrics) */
  heldUnits (): Map<LeaseKind, number> {
    const out = new Map<LeaseKind, number>()
    for (const lease of this.#holding) out.set(lease.kind, (out.get(lease.kind) ?? 0) + lease.units)
    return out
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
    const month = budgetMonth(Date.now())
    const returns: LeaseReturn[] = []
    for (const lease of ++this.#sweeps % SLOW_SWEEP_EVERY === 0 ? this.#holding : this.#holdingFast) {
      if (lease.units <= 0) {
        this.#holding.delete(lease)
        this.#holdingFast.delete(lease)
      } else if (now >= lease.expiresAt) {
        this.giveUp(lease, 'expired', returns)
      } else if (lease.idle(now) || (lease.subject.kind === 'budget' && lease.subject.month !== month)) {
        this.giveUp(lease, 'idle', returns)
      }
    }
    this.sendReturns(returns)
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
}

/** a key's change touches that key's own leases; any other change touches every lease */
function touchedBy (lease: Lease, invalidation: Invalidation): boolean {
  return invalidation.kind !== 'key' || (lease.subject.spec.name === 'key' && lease.subject.spec.subject === invalidation.id)
}
