// One worker's lease on one limit: units it took from the shared store in advance and now
// admits requests against locally, with the demand estimate that sizes its next top-up.
import { MIN_GRANT, type LeaseSubject } from './admission.js'

/** a lease is sized to cover this much of its subject's observed traffic on this worker */
export const LEASE_HORIZON_MS = 100
/** the most units one worker holds on one subject, whatever the traffic */
export const LEASE_MAX_UNITS = 1024
/** a lease is not used longer than this after its last grant: the most a Redis blip is bridged */
export const LEASE_LIFETIME_MS = 1000
/** unused this long (or four of its usual gaps between requests, if longer), a lease goes back */
export const LEASE_IDLE_MS = 20
/** the demand estimate takes a new sample once this much time has passed */
const RATE_SAMPLE_MS = 5

/** for metrics: which limit a lease is on */
export type LeaseKind = 'key_rate' | 'customer_rate' | 'credential_quota' | 'key_budget' | 'customer_budget'

export class Lease {
  readonly subject: LeaseSubject
  readonly kind: LeaseKind
  /** units held: requests (rate limits) or cost units (budgets) this worker may admit now */
  units: number
  /** performance.now() from which the units may not be used, and are given back */
  expiresAt: number
  /** the last request that needed this subject, admitted here or not */
  lastSeen: number
  /** requests seen since `sampleStart` */
  seen: number
  sampleStart: number
  /** requests per ms on this worker, smoothed; 0 until the first sample */
  rate: number
  /** a grant is on its way: no other top-up is asked meanwhile */
  pending: boolean
  /** the last grant's size: the next top-up is asked when a quarter of it is left */
  lastGrant: number
  /** rate limits, for the RateLimit header: the room the store reported at the last grant… */
  room: number
  /** …the requests admitted here since… */
  takenSinceGrant: number
  /** …and when the limit would be fully replenished then (performance.now() time) */
  fullAt: number
  /** false once dropped from the table */
  live: boolean

  constructor (subject: LeaseSubject, kind: LeaseKind, now: number) {
    this.subject = subject
    this.kind = kind
    this.units = 0
    this.expiresAt = 0
    this.lastSeen = now
    this.seen = 0
    this.sampleStart = now
    this.rate = 0
    this.pending = false
    this.lastGrant = 0
    this.room = 0
    this.takenSinceGrant = 0
    this.fullAt = 0
    this.live = true
  }

  /** HOT PATH: a request needs this subject */
  see (now: number): void {
    this.seen++
    this.lastSeen = now
  }

  /** HOT PATH: `units` (at least 1) can be admitted here, now */
  has (units: number, now: number): boolean {
    return this.units >= units && now < this.expiresAt
  }

  /** HOT PATH: the next top-up is due (a quarter of the last grant left, none asked yet) */
  low (): boolean {
    return !this.pending && this.units * 4 <= this.lastGrant
  }

  /**
   * How many units to ask for: the observed rate over the horizon, up to the cap; 0 when that
   * is under a useful lease (a slow key stays on one decision per request, as without leases).
   */
  want (now: number): number {
    const elapsed = now - this.sampleStart
    if (elapsed >= RATE_SAMPLE_MS) {
      const sample = this.seen / elapsed
      this.rate = this.rate === 0 ? sample : (this.rate + sample) / 2
      this.seen = 0
      this.sampleStart = now
    }
    const want = Math.min(Math.ceil(this.rate * LEASE_HORIZON_MS), LEASE_MAX_UNITS - this.units)
    return want < MIN_GRANT ? 0 : want
  }

  /** granted units arrive; `room` is what the store saw before the grant, `fullMs` how far ahead the limit is then */
  granted (units: number, room: number, fullMs: number, now: number): void {
    this.units += units
    this.lastGrant = units
    this.expiresAt = now + LEASE_LIFETIME_MS
    this.room = room
    this.takenSinceGrant = 0
    this.fullAt = now + fullMs
  }

  /** unused for longer than its idle bound: four usual gaps between requests, at least LEASE_IDLE_MS */
  idle (now: number): boolean {
    const gap = this.rate === 0 ? 0 : 4 / this.rate
    return now - this.lastSeen > (gap > LEASE_IDLE_MS ? Math.min(gap, LEASE_LIFETIME_MS) : LEASE_IDLE_MS)
  }
}
