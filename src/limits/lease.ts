// One worker's lease on one limit: units it took from the shared store in advance and now
// admits requests against locally, with the demand estimate that sizes its next top-up.
import { MIN_GRANT, type LeaseSubject } from './admission.js'

/** a lease is sized to cover this much of its subject's observed traffic on this worker… */
export const LEASE_HORIZON_MS = 100
/**
 * …and a slower subject's lease (one that would get fewer units that way): what it sees in
 * 80 % of SLOW_LEASE_LIFETIME_MS, at most this many requests' worth (units times the cost). Most of a Zipf-spread key population
 * is slow on any one worker: with 8 units, the keys between a few and a few hundred requests a
 * second took a store decision every ninth request; 64 makes that one in sixty-five.
 */
export const SLOW_LEASE_MAX = 64
/** the most units one worker holds on one subject, whatever the traffic */
export const LEASE_MAX_UNITS = 1024
/** a lease is not used longer than this after its last grant: the most a Redis blip is bridged */
export const LEASE_LIFETIME_MS = 1000
/**
 * …except a slow subject's few units (at most SLOW_LEASE_MAX requests' worth), which may last
 * this long: a key with a request every ten seconds on a worker still spends a lease of two.
 * Nothing is risked by the length: the units were counted as used when granted, and an admin
 * change takes them back at once; it bounds how long an idle slow lease keeps units out of the
 * store.
 */
export const SLOW_LEASE_LIFETIME_MS = 30_000
/** unused this long (or IDLE_GAPS of its usual gaps between requests, if longer), a lease goes back */
export const LEASE_IDLE_MS = 20
/**
 * a subject's usual gaps between requests before its lease counts as idle: with Poisson
 * arrivals four gaps pass without a request once in 55, and a slow lease of 64 units was
 * given back before it was spent; ten pass once in 22,000
 */
const IDLE_GAPS = 10
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
  /** budgets: the cost of the last request seen, which a lease is sized in (rate limits: 1) */
  cost: number
  sampleStart: number
  /** requests per ms on this worker, smoothed; 0 until the first sample */
  rate: number
  /** a grant is on its way: no other top-up is asked meanwhile */
  pending: boolean
  /** the last want was a slow subject's: a longer lifetime, and no top-up asked in advance */
  slow: boolean
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
    this.cost = 1
    this.sampleStart = now
    this.rate = 0
    this.pending = false
    this.slow = false
    this.lastGrant = 0
    this.room = 0
    this.takenSinceGrant = 0
    this.fullAt = 0
    this.live = true
  }

  /** HOT PATH: a request needs this subject, `cost` units of it */
  see (now: number, cost: number): void {
    this.seen++
    this.lastSeen = now
    this.cost = cost
  }

  /** HOT PATH: `units` (at least 1) can be admitted here, now */
  has (units: number, now: number): boolean {
    return this.units >= units && now < this.expiresAt
  }

  /**
   * HOT PATH: the next top-up is due: a quarter of the last grant left, none asked yet. A slow
   * subject's next request asks for it instead: ahead of time it would be a store call of its own.
   */
  low (): boolean {
    return !this.pending && !this.slow && this.units * 4 <= this.lastGrant
  }

  /**
   * How many units to ask for: the observed rate over the horizon, up to the cap (a slower
   * subject: what it sees in most of a lifetime, up to SLOW_LEASE_MAX); 0 when that is under a
   * useful lease (a key seen less than about once in 12 s stays on one decision per request).
   */
  want (now: number): number {
    const elapsed = now - this.sampleStart
    if (elapsed >= RATE_SAMPLE_MS) {
      const sample = this.seen / elapsed
      this.rate = this.rate === 0 ? sample : (this.rate + sample) / 2
      this.seen = 0
      this.sampleStart = now
    }
    if (this.cost <= 0) return 0
    let want = Math.ceil(this.rate * LEASE_HORIZON_MS)
    this.slow = want < SLOW_LEASE_MAX
    if (this.slow) want = Math.min(Math.floor(this.rate * SLOW_LEASE_LIFETIME_MS * 0.8), SLOW_LEASE_MAX)
    // in units: a budget's requests cost `cost` each; a lease that cannot cover two is no use
    want = Math.min(want * this.cost, LEASE_MAX_UNITS - this.units)
    return want < MIN_GRANT * this.cost ? 0 : want
  }

  /**
   * granted units arrive; `room` is what the store saw before the grant, `fullMs` how far ahead
   * the limit is then. The caller gives back units past their lifetime first: a grant never
   * makes them usable again.
   */
  granted (units: number, room: number, fullMs: number, now: number): void {
    this.units += units
    this.lastGrant = units
    this.expiresAt = now + (this.slow ? SLOW_LEASE_LIFETIME_MS : LEASE_LIFETIME_MS)
    this.room = room
    this.takenSinceGrant = 0
    this.fullAt = now + fullMs
  }

  /** unused for longer than its idle bound: IDLE_GAPS usual gaps between requests, at least LEASE_IDLE_MS */
  idle (now: number): boolean {
    const gap = this.rate === 0 ? 0 : IDLE_GAPS / this.rate
    return now - this.lastSeen > (gap > LEASE_IDLE_MS ? gap : LEASE_IDLE_MS)
  }
}
