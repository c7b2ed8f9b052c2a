// Presented key → KeyContext: the HMAC check, then the cache, then (on a miss) one store
// query. Concurrent misses for the same key share one load, and no request waits for it longer
// than the load timeout: a store that hangs (PostgreSQL black-holed, a stuck connection) fails
// the request closed instead of holding it until the client gives up.
import type { ControlStore } from '../store/control-store.js'
import type { ResolvedKeyRecord } from '../store/model.js'
import type { VirtualKeyCodec } from '../keys/virtual-key.js'
import type { Invalidation } from '../store/invalidation.js'
import type { KeyCache } from './key-cache.js'
import { compilePolicyRoutes, keyContextOf, type CompileDeps, type KeyContext, type PolicyRoutes } from './key-context.js'
import { SharedLookups } from './shared-lookups.js'
import type { SharedPolicyRoutes } from './shared-policy-routes.js'

export class KeyResolver {
  readonly #codec: VirtualKeyCodec
  readonly #cache: KeyCache
  readonly #store: ControlStore
  readonly #compile: CompileDeps
  readonly #buildRoutes = (record: ResolvedKeyRecord): Promise<PolicyRoutes> => compilePolicyRoutes(record, this.#compile)
  readonly #policyRoutes: SharedPolicyRoutes
  readonly #loading: SharedLookups<KeyContext | null>
  /**
   * Presented key → its digest, for keys that passed the HMAC check. The HMAC is the single
   * largest cost of a cache hit, and a key's digest never changes, so a key seen before skips it.
   * Only keys that verified are remembered (exact string match), so this can never admit a key
   * the HMAC check would refuse; garbage keys pay the HMAC every time and are never stored.
   * Raw keys live here in worker memory only, as they do in every request being served.
   */
  readonly #digests = new Map<string, string>()
  readonly #maxDigests: number

  constructor (deps: { codec: VirtualKeyCodec; cache: KeyCache; policyRoutes: SharedPolicyRoutes; store: ControlStore; compile: CompileDeps; loadTimeoutMs: number; maxRemembered?: number }) {
    this.#maxDigests = deps.maxRemembered ?? 100_000
    this.#loading = new SharedLookups(deps.loadTimeoutMs, 'a key lookup')
    this.#codec = deps.codec
    this.#cache = deps.cache
    this.#store = deps.store
    this.#compile = deps.compile
    this.#policyRoutes = deps.policyRoutes
  }

  /** HOT PATH: the lookup digest (latin1 string) of a well-formed key, or null for a bad one. */
  digestOf (key: string): string | null {
    const known = this.#digests.get(key)
    if (known !== undefined) return known
    const verified = this.#codec.verify(key)
    if (verified === null) return null
    const digest = verified.toString('latin1')
    if (this.#digests.size >= this.#maxDigests) this.#digests.clear()
    this.#digests.set(key, digest)
    return digest
  }

  /** HOT PATH: the cached context, without any I/O. */
  cached (digest: string): KeyContext | undefined {
    return this.#cache.get(digest)
  }

  /**
   * the context from the store (null: no such key); rejects when the store fails or has not
   * answered within the load timeout (the load itself goes on, and fills the cache if it ends)
   */
  load (digest: string): Promise<KeyContext | null> {
    return this.#loading.get(digest, () => this.#load(digest))
  }

  /**
   * Drops affected cache entries and forgets loads in flight, so a request arriving after the
   * change never joins a load that may have read the old state.
   */
  invalidate (invalidation: Invalidation): void {
    this.#cache.invalidate(invalidation)
    this.#policyRoutes.invalidate(invalidation)
    this.#loading.clear()
  }

  async #load (digest: string): Promise<KeyContext | null> {
    // both before the read: a change that lands while it is on its way keeps its result out
    const epoch = this.#cache.epoch
    const routesEpoch = this.#policyRoutes.epoch
    const record = await this.#store.resolveKey(Buffer.from(digest, 'latin1'))
    if (record === null) return null
    const shared = await this.#policyRoutes.get(record, routesEpoch, this.#buildRoutes)
    const context = keyContextOf(record, shared.routes)
    this.#cache.set(digest, context, epoch, shared.expiresAt)
    return context
  }
}
