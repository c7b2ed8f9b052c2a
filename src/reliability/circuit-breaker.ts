// A circuit breaker for one partner environment or one credential.
//
//   closed ──(in the last 10 s: failure_threshold failures or more, and more than half of the
//            requests failed; or a credential rejected from two keys)──► open
//   open ──(open_ms elapsed: the next request becomes the probe)──► half-open
//   half-open ──(probe succeeds)──► closed      half-open ──(probe fails)──► open again
//
// A ratio over a window with a minimum volume, as Envoy's outlier detection does, rather than a
// count of consecutive failures: one key whose requests keep failing cannot open a breaker
// while other keys' requests through it succeed. What counts as a failure is the caller's to
// say (ProxyExchange: transport failures, timeouts, 502–504; never a 500 that may be one
// request's doing).
//
// While open, requests are answered 503 circuit_open without touching the upstream. Only one
// probe is in flight at a time; a probe that ends without a verdict (the client left) hands the
// slot back. Any success while open closes the breaker: a response that arrives proves the
// upstream answers.

export interface BreakerSettings {
  /** the fewest failures in the window that may open the breaker */
  failureThreshold: number
  openMs: number
}

/** the window failures are counted over, in BUCKETS slices */
export const BREAKER_WINDOW_MS = 10_000
const BUCKETS = 10
const BUCKET_MS = BREAKER_WINDOW_MS / BUCKETS
/** the share of the window's requests that failures must exceed */
export const BREAKER_FAILURE_RATIO = 0.5

export class CircuitBreaker {
  #settings: BreakerSettings
  // a ring of per-second counts; #bucket is the index (time / BUCKET_MS) of the newest slice
  readonly #requests = new Uint32Array(BUCKETS)
  readonly #failures = new Uint32Array(BUCKETS)
  #bucket = 0
  /** epoch ms until which the breaker refuses; 0 when closed */
  #openUntil = 0
  #probing = false
  #opened = 0
  /** keys whose requests the vendor refused this credential for, and when last */
  readonly #rejectedBy = new Map<string, number>()

  constructor (settings: BreakerSettings) {
    this.#settings = settings
  }

  configure (settings: BreakerSettings): void {
    this.#settings = settings
  }

  get isOpen (): boolean {
    return this.#openUntil !== 0
  }

  /** times this breaker went from closed to open, since start */
  get opened (): number {
    return this.#opened
  }

  /** HOT PATH: true when a request would be refused right now (does not take the probe slot) */
  blocks (nowMs: number): boolean {
    const until = this.#openUntil
    return until !== 0 && (nowMs < until || this.#probing)
  }

  /**
   * Lets a request through: always when closed; when open and due, as the probe (returns
   * 'probe'); otherwise refuses (returns 'refused').
   */
  enter (nowMs: number): 'pass' | 'probe' | 'refused' {
    const until = this.#openUntil
    if (until === 0) return 'pass'
    if (nowMs < until || this.#probing) return 'refused'
    this.#probing = true
    return 'probe'
  }

  /** ms until a refused request could be let through (for Retry-After) */
  retryAfterMs (nowMs: number): number {
    if (this.#openUntil === 0) return 0
    return Math.max(this.#openUntil - nowMs, this.#probing ? 1000 : 0)
  }

  /** HOT PATH */
  succeeded (nowMs: number): void {
    if (this.#openUntil !== 0) {
      this.#openUntil = 0
      this.#probing = false
      this.#clear()
      return
    }
    this.#requests[this.#slice(nowMs)]!++
  }

  failed (nowMs: number): void {
    if (this.#openUntil !== 0) {
      // a failed probe (or a late failure of a request sent before the breaker opened)
      if (this.#probing || nowMs >= this.#openUntil) this.#open(nowMs)
      return
    }
    const slice = this.#slice(nowMs)
    this.#requests[slice]!++
    this.#failures[slice]!++
    let requests = 0
    let failures = 0
    for (let i = 0; i < BUCKETS; i++) {
      requests += this.#requests[i]!
      failures += this.#failures[i]!
    }
    if (failures >= this.#settings.failureThreshold && failures > requests * BREAKER_FAILURE_RATIO) this.#open(nowMs)
  }

  /**
   * The vendor refused this credential (401, or 403 with `fatal` false) for a request of `keyId`.
   * One key alone proves nothing about the credential (its requests may be what is refused), so
   * only a refusal seen from a second key within the window counts: a 401 then opens the breaker
   * at once, a 403 counts as one failure. Returns true when it counted.
   */
  rejected (nowMs: number, keyId: string, fatal: boolean): boolean {
    for (const [key, at] of this.#rejectedBy) if (nowMs - at > BREAKER_WINDOW_MS) this.#rejectedBy.delete(key)
    this.#rejectedBy.set(keyId, nowMs)
    if (this.#rejectedBy.size < 2) return false
    if (fatal) this.trip(nowMs)
    else this.failed(nowMs)
    return true
  }

  /** opens at once, whatever the count */
  trip (nowMs: number): void {
    if (this.#openUntil === 0 || this.#probing) this.#open(nowMs)
  }

  /** the probe ended without telling us anything: let another request probe */
  releaseProbe (): void {
    this.#probing = false
  }

  #open (nowMs: number): void {
    if (this.#openUntil === 0) this.#opened++
    this.#openUntil = nowMs + this.#settings.openMs
    this.#probing = false
    this.#clear()
  }

  /** the ring slot for `nowMs`, emptying the slices the clock has moved past */
  #slice (nowMs: number): number {
    const bucket = Math.floor(nowMs / BUCKET_MS)
    const behind = bucket - this.#bucket
    if (behind > 0) {
      for (let i = 1; i <= Math.min(behind, BUCKETS); i++) {
        const slot = (this.#bucket + i) % BUCKETS
        this.#requests[slot] = 0
        this.#failures[slot] = 0
      }
      this.#bucket = bucket
    }
    // a time before the newest slice (a late report) counts in the newest
    return this.#bucket % BUCKETS
  }

  #clear (): void {
    this.#requests.fill(0)
    this.#failures.fill(0)
    this.#rejectedBy.clear()
  }
}
