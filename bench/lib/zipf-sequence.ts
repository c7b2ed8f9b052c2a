// A fixed sequence of draws from a Zipf distribution over a list of values: the value of rank r
// (values[r - 1], rank 1 the most frequent) comes up with probability proportional to r^-s. The
// draws are made once, before any load, so a HeaderRotation over the sequence costs the driver
// what a rotation over the values themselves does: one array read per request. The generator
// is seeded, so every run of a benchmark sends the same keys in the same order.

export interface ZipfOptions {
  /** s: 1 is the classic Zipf law; larger gives the head a larger share */
  exponent: number
  /** how many draws */
  length: number
  /** any 32-bit integer; the same seed gives the same sequence */
  seed: number
}

export function zipfSequence<T> (values: readonly T[], options: ZipfOptions): T[] {
  if (values.length === 0) throw new Error('zipfSequence: no values')
  // cumulative weights, unnormalised: a draw scales its uniform number by the total instead
  const cumulative = new Float64Array(values.length)
  let total = 0
  for (let rank = 1; rank <= values.length; rank++) {
    total += rank ** -options.exponent
    cumulative[rank - 1] = total
  }
  const next = mulberry32(options.seed)
  const drawn = new Array<T>(options.length)
  for (let i = 0; i < options.length; i++) drawn[i] = values[firstAbove(cumulative, next() * total)]!
  return drawn
}

/** the smallest index whose cumulative weight exceeds u (binary search; u < the last weight) */
function firstAbove (cumulative: Float64Array, u: number): number {
  let low = 0
  let high = cumulative.length - 1
  while (low < high) {
    const mid = (low + high) >>> 1
    if (cumulative[mid]! > u) high = mid
    else low = mid + 1
  }
  return low
}

/**
 * Mulberry32: a small, fast 32-bit generator, uniform in [0, 1). Math.random cannot be seeded,
 * and a load pattern that changes from run to run would change the numbers it is meant to compare.
 */
function mulberry32 (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
