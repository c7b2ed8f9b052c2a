// A partner's concurrency cap: requests in flight to it at once, beyond which RelayKey answers
// 503 with Retry-After at once instead of queueing behind a slow partner. A request holds its
// slot from its first attempt's dispatch to its end, not while its client is still sending a
// body RelayKey buffers first. The partner's
// `max_in_flight` is per node; each worker holds an equal share, so the node's total stays
// within the cap without any cross-process coordination on the hot path.

export class InFlightGate {
  #limit: number
  #inFlight = 0
  #refused = 0

  constructor (limit: number) {
    this.#limit = limit
  }

  configure (limit: number): void {
    this.#limit = limit
  }

  /** HOT PATH: true (and counted as a refusal) when no slot is free now; takes none */
  full (): boolean {
    if (this.#inFlight < this.#limit) return false
    this.#refused++
    return true
  }

  /** HOT PATH */
  tryEnter (): boolean {
    if (this.#inFlight >= this.#limit) {
      this.#refused++
      return false
    }
    this.#inFlight++
    return true
  }

  /** HOT PATH */
  leave (): void {
    this.#inFlight--
  }

  get inFlight (): number {
    return this.#inFlight
  }

  get refused (): number {
    return this.#refused
  }
}
