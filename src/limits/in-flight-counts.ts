// A policy's max_in_flight (per key) and customer_max_in_flight (all of a customer's keys
// together): requests in flight at once on a node, beyond which a request gets 429
// concurrency_limited with Retry-After. Like a partner's cap, each worker holds an equal share,
// ceil(n / workers): no coordination on the hot path, so a node admits at most
// n + workers − 1 (a key's connections spread over the workers). One key cannot hold every
// slot of a partner that other keys share.

export class InFlightCounts {
  readonly #counts = new Map<string, number>()
  readonly #workers: number

  constructor (workers: number) {
    this.#workers = workers
  }

  /** HOT PATH: takes a slot of `id` unless its share of `limit` is in use */
  tryEnter (id: string, limit: number): boolean {
    const n = this.#counts.get(id) ?? 0
    if (n >= Math.ceil(limit / this.#workers)) return false
    this.#counts.set(id, n + 1)
    return true
  }

  /** HOT PATH: gives a slot back; an id with none in flight is forgotten */
  leave (id: string): void {
    const n = this.#counts.get(id)
    if (n === undefined) return
    if (n <= 1) this.#counts.delete(id)
    else this.#counts.set(id, n - 1)
  }

  /** ids with requests in flight (for tests and metrics) */
  get size (): number {
    return this.#counts.size
  }
}
