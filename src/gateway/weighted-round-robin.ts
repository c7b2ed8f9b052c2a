// Smooth weighted round-robin (as nginx does it): over any window of sum(weights) picks,
// each item is chosen exactly weight times, and heavy items are spread out, not bunched.
//
//   weights a=5 b=1 c=1 → a a b a c a a | a a b a c a a | …

export class WeightedRoundRobin<T> {
  readonly #items: readonly T[]
  readonly #weights: Int32Array
  readonly #current: Int32Array
  readonly #total: number

  constructor (items: readonly T[], weights: readonly number[]) {
    if (items.length === 0 || items.length !== weights.length) throw new RangeError('weighted round-robin needs items with weights')
    this.#items = items
    this.#weights = Int32Array.from(weights)
    this.#current = new Int32Array(items.length)
    this.#total = weights.reduce((a, b) => a + b, 0)
  }

  get size (): number {
    return this.#items.length
  }

  /**
   * HOT PATH: the next item for which `usable(item)` holds, or null when none does.
   * Items skipped as unusable do not get their turn credited, so they rejoin fairly.
   */
  next (usable?: (item: T) => boolean): T | null {
    const items = this.#items
    if (items.length === 1) return usable === undefined || usable(items[0]!) ? items[0]! : null
    const current = this.#current
    const weights = this.#weights
    let best = -1
    let total = 0
    for (let i = 0; i < items.length; i++) {
      if (usable !== undefined && !usable(items[i]!)) continue
      current[i]! += weights[i]!
      total += weights[i]!
      if (best === -1 || current[i]! > current[best]!) best = i
    }
    if (best === -1) return null
    current[best]! -= usable === undefined ? this.#total : total
    return items[best]!
  }
}
