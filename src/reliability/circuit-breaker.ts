// A circuit breaker for one partner environment or one credential.
//
//   closed ──(failure_threshold consecutive failures, or a credential rejection)──► open
//   open ──(open_ms elapsed: the next request becomes the probe)──► half-open
//   half-open ──(probe succeeds)──► closed      half-open ──(probe fails)──► open again
//
// While open, requests are answered 503 circuit_open without touching the upstream. Only one
// probe is in flight at a time; a probe that ends without a verdict (the client left) hands the
// slot back. Any success closes the breaker: a response that arrives proves the upstream answers.

export interface BreakerSettings {
  failureThreshold: number
  openMs: number
}

export class CircuitBreaker {
  #settings: BreakerSettings
  #failures = 0
  /** epoch ms until which the breaker refuses; 0 when closed */
  #openUntil = 0
  #probing = false
  #opened = 0

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

  succeeded (): void {
    this.#failures = 0
    this.#openUntil = 0
    this.#probing = false
  }

  failed (nowMs: number): void {
    if (this.#openUntil !== 0) {
      // a failed probe (or a late failure of a request sent before the breaker opened)
      if (this.#probing || nowMs >= this.#openUntil) this.#open(nowMs)
      return
    }
    if (++this.#failures >= this.#settings.failureThreshold) this.#open(nowMs)
  }

  /** opens at once, whatever the count: the vendor refused the credential itself */
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
    this.#failures = 0
  }
}
