// LRU of resolved key contexts, keyed by the key's HMAC digest (never the raw key), so a hit
// costs no store query and only a key whose digest the HMAC check produced can ever hit.
//
//   Map insertion order = recency:  oldest … newest
//   set() evicts from the oldest end when full. get() moves a hit to the newest end only when
//   more than max/4 inserts happened since it was last moved: entries that could be near the
//   oldest end get rescued, and a hot key costs a lookup instead of a delete and re-insert.
//
// Entries expire after `ttlMs` even without an invalidation message, which bounds how long a
// lost message can keep a changed (e.g. revoked) key context alive. Every invalidation bumps
// `epoch`; a load that started before a bump must not store its (possibly stale) result.
import type { Invalidation } from '../store/invalidation.js'
import type { KeyContext } from './key-context.js'

interface Entry {
  context: KeyContext
  expiresAt: number
  /** value of #writes when the entry was last moved to the newest end */
  stamp: number
}

export interface KeyCacheStats {
  hits: number
  misses: number
  size: number
}

export class KeyCache {
  readonly #entries = new Map<string, Entry>()
  readonly #max: number
  readonly #ttlMs: number
  readonly #now: () => number
  #epoch = 0
  #writes = 0
  #hits = 0
  #misses = 0

  constructor (options: { max: number; ttlMs: number; now?: () => number }) {
    this.#max = options.max
    this.#ttlMs = options.ttlMs
    this.#now = options.now ?? Date.now
  }

  get epoch (): number {
    return this.#epoch
  }

  /** HOT PATH: Map lookup, expiry check, recency bump. */
  get (digest: string): KeyContext | undefined {
    const entry = this.#entries.get(digest)
    if (entry === undefined) {
      this.#misses++
      return undefined
    }
    if (entry.expiresAt <= this.#now()) {
      this.#entries.delete(digest)
      this.#misses++
      return undefined
    }
    if (this.#writes - entry.stamp > this.#max >>> 2) {
      this.#entries.delete(digest)
      entry.stamp = this.#writes
      this.#entries.set(digest, entry)
    }
    this.#hits++
    return entry.context
  }

  /**
   * stores a context loaded while the cache was at `loadedAtEpoch` (dropped if that is stale),
   * until the TTL or `notAfter` (what it was built on expires then), whichever comes first
   */
  set (digest: string, context: KeyContext, loadedAtEpoch: number, notAfter = Infinity): boolean {
    if (loadedAtEpoch !== this.#epoch) return false
    if (this.#entries.size >= this.#max && !this.#entries.has(digest)) {
      const oldest = this.#entries.keys().next().value
      if (oldest !== undefined) this.#entries.delete(oldest)
    }
    this.#entries.delete(digest)
    this.#entries.set(digest, { context, expiresAt: Math.min(this.#now() + this.#ttlMs, notAfter), stamp: ++this.#writes })
    return true
  }

  invalidate (invalidation: Invalidation): void {
    this.#epoch++
    if (invalidation.kind === 'all') {
      this.#entries.clear()
      return
    }
    for (const [digest, { context }] of this.#entries) {
      if (affects(context, invalidation)) this.#entries.delete(digest)
    }
  }

  stats (): KeyCacheStats {
    return { hits: this.#hits, misses: this.#misses, size: this.#entries.size }
  }
}

function affects (context: KeyContext, invalidation: Invalidation): boolean {
  switch (invalidation.kind) {
    case 'key': return context.keyId === invalidation.id
    case 'policy': return context.policy.id === invalidation.id
    case 'partner': return context.partnerIds.includes(invalidation.id)
    case 'all': return true
  }
}
