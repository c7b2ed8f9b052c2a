// Control-store lookups on the request path (a key-cache miss, the partner behind a refusal):
// shared by every request that asks the same thing while one is in flight, and bounded by
// RELAYKEY_KEY_LOAD_TIMEOUT_MS, so a store that stops answering without closing anything fails
// the request closed (503) instead of holding it. A lookup older than the bound may be stuck on
// a dead connection for good: the next request starts a fresh one. Nothing is cancelled; a late
// answer still serves whoever shares it.
import { answerWithin } from '../store/answer-within.js'

export class SharedLookups<T> {
  readonly #timeoutMs: number
  /** the refusal's message, naming the lookup */
  readonly #timeoutMessage: string
  readonly #inFlight = new Map<string, { promise: Promise<T>; started: number }>()

  constructor (timeoutMs: number, what: string) {
    this.#timeoutMs = timeoutMs
    this.#timeoutMessage = `the control store did not answer ${what} within ${timeoutMs} ms`
  }

  /** the answer of the lookup in flight for `key` (starting `lookUp` if none is, or it is stale) */
  get (key: string, lookUp: () => Promise<T>): Promise<T> {
    const now = performance.now()
    let entry = this.#inFlight.get(key)
    if (entry === undefined || now - entry.started > this.#timeoutMs) {
      const fresh = { promise: lookUp(), started: now }
      fresh.promise.finally(() => {
        if (this.#inFlight.get(key) === fresh) this.#inFlight.delete(key)
      }).catch(() => {}) // a lookup that fails after every waiter gave up is nobody's error
      this.#inFlight.set(key, fresh)
      entry = fresh
    }
    return answerWithin(entry.promise, this.#timeoutMs, this.#timeoutMessage)
  }

  /** after a change: no later request joins a lookup that may have read the old state */
  clear (): void {
    this.#inFlight.clear()
  }
}
