// A partner's concurrency cap: requests in flight to it at once, beyond which RelayKey answers
// 503 with Retry-After at once instead of queueing behind a slow partner. The partner's
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
