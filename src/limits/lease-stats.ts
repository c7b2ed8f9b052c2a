// What the leases of one worker did, for /metrics: plain counters the hot path increments, read
// at scrape time (gateway-metrics.ts).
import type { LeaseKind } from './lease.js'

export class LeaseStats {
  /** requests admitted from a lease, with no store call */
  local = 0
  /** decisions that went to the store */
  store = 0
  /** background top-up calls and return calls made */
  topUpCalls = 0
  returnCalls = 0
  /** per kind: grants made and units granted */
  readonly grants = new Map<LeaseKind, number>()
  readonly grantedUnits = new Map<LeaseKind, number>()
  /** per `kind reason`: returns made and units given back */
  readonly returns = new Map<string, number>()
  readonly returnedUnits = new Map<string, number>()

  granted (kind: LeaseKind, units: number): void {
    this.grants.set(kind, (this.grants.get(kind) ?? 0) + 1)
    this.grantedUnits.set(kind, (this.grantedUnits.get(kind) ?? 0) + units)
  }

  returned (kind: LeaseKind, reason: string, units: number): void {
    const label = `${kind} ${reason}`
    this.returns.set(label, (this.returns.get(label) ?? 0) + 1)
    this.returnedUnits.set(label, (this.returnedUnits.get(label) ?? 0) + units)
  }
}
