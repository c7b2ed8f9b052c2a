// The worker's account of request bodies held in memory to be signed (hmac, jwt): each is read
// whole before its first attempt, so together they are bounded here
// (RELAYKEY_SIGNED_BODY_MEMORY_BYTES). A body that would pass the bound is refused 503 with
// Retry-After before it is read further; /metrics shows what is held.
export class SignedBodyMemory {
  readonly #limit: number
  #held = 0

  constructor (limitBytes: number) {
    this.#limit = limitBytes
  }

  /** false: holding `bytes` more would pass the bound (nothing is taken then) */
  take (bytes: number): boolean {
    if (this.#held + bytes > this.#limit) return false
    this.#held += bytes
    return true
  }

  give (bytes: number): void {
    this.#held -= bytes
  }

  held (): number {
    return this.#held
  }
}
