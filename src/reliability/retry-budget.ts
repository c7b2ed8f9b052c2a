// A partner's retry budget (Finagle's RetryBudget, Envoy's retry_budget): retries may add at
// most `ratio` of the requests seen over the last window, plus a small floor per second so a
// quiet partner can still retry. During an outage every request fails, and without a budget
// each would be sent max_attempts times: the budget keeps the extra load at ~ratio.
//
// State is per worker, in one-second buckets over a ten-second window: no clock reads beyond
// the one the caller already has, no allocation after construction.

const WINDOW_SECONDS = 10

export interface RetryBudgetSettings {
  /** retries allowed per request seen, 0..1 */
  ratio: number
  /** retries always allowed per second, whatever the request count */
  minPerSecond: number
}

export class RetryBudget {
  #ratio: number
  #minPerSecond: number
  readonly #requests = new Float64Array(WINDOW_SECONDS)
  readonly #retries = new Float64Array(WINDOW_SECONDS)
  /** the second (epoch) each bucket currently counts */
  readonly #bucketSecond = new Float64Array(WINDOW_SECONDS)
  #exhausted = 0

  constructor (settings: RetryBudgetSettings) {
    this.#ratio = settings.ratio
    this.#minPerSecond = settings.minPerSecond
  }

  configure (settings: RetryBudgetSettings): void {
    this.#ratio = settings.ratio
    this.#minPerSecond = settings.minPerSecond
  }

  /** HOT PATH: once per request sent to the partner (first attempts only) */
  recordRequest (nowMs: number): void {
    this.#requests[this.#bucket(nowMs)]! += 1
  }

  /** Takes one retry from the budget if there is one left. */
  tryRetry (nowMs: number): boolean {
    const current = this.#bucket(nowMs)
    const oldest = Math.floor(nowMs / 1000) - WINDOW_SECONDS + 1
    let requests = 0
    let retries = 0
    for (let i = 0; i < WINDOW_SECONDS; i++) {
      if (this.#bucketSecond[i]! < oldest) continue
      requests += this.#requests[i]!
      retries += this.#retries[i]!
    }
    if (retries + 1 > this.#ratio * requests + this.#minPerSecond * WINDOW_SECONDS) {
      this.#exhausted++
      return false
    }
    this.#retries[current]! += 1
    return true
  }

  /** retries refused because the budget was spent, since start */
  get exhausted (): number {
    return this.#exhausted
  }

  #bucket (nowMs: number): number {
    const second = Math.floor(nowMs / 1000)
    const i = second % WINDOW_SECONDS
    if (this.#bucketSecond[i] !== second) {
      this.#bucketSecond[i] = second
      this.#requests[i] = 0
      this.#retries[i] = 0
    }
    return i
  }
}
