// What every key of one policy in one environment shares — the compiled policy and its partner
// routes (upstreams, credentials and their signers, round robins, vendor-quota orders) — built
// once per (policy, environment) and shared by the key contexts built from it. 10,000 keys of a
// policy then hold one copy instead of 10,000, and a request finds these objects in memory the
// requests of the policy's other keys keep warm (with 10,000 keys the per-key copies made the
// route lookup alone cost a microsecond more per request than with one key).
//
// An entry goes when the key contexts built from it would: on a change to its policy, to one of
// its partners (or their credentials), on a reload of everything, and after the key cache's TTL
// (so a secret re-read by a key's reload is re-read here too; a context built on an entry
// expires with it). Routes built from a store read made before such a change are used by the
// load that read it, never kept or shared, as the key cache does with contexts.
import type { Invalidation } from '../store/invalidation.js'
import type { ResolvedKeyRecord } from '../store/model.js'
import type { PolicyRoutes } from './key-context.js'

/** shared routes, and when they stop being reused: a context built on them expires no later */
export interface SharedRoutes {
  readonly routes: PolicyRoutes
  readonly expiresAt: number
}

export class SharedPolicyRoutes {
  readonly #entries = new Map<string, SharedRoutes>()
  /** builds under way, shared by the loads that need the same entry */
  readonly #building = new Map<string, Promise<SharedRoutes>>()
  readonly #ttlMs: number
  readonly #max: number
  readonly #now: () => number
  /** bumped by every change that drops entries */
  #epoch = 0

  constructor (options: { ttlMs: number; max: number; now?: () => number }) {
    this.#ttlMs = options.ttlMs
    this.#max = options.max
    this.#now = options.now ?? Date.now
  }

  get size (): number {
    return this.#entries.size
  }

  /** read before the store read a load builds on, and handed to get() */
  get epoch (): number {
    return this.#epoch
  }

  /**
   * The shared routes of `record`'s policy and environment, built with `build` when there are
   * none. `readAtEpoch`: this.epoch before `record` was read from the store; a record read
   * before a change builds routes for its own load only.
   */
  get (record: ResolvedKeyRecord, readAtEpoch: number, build: (record: ResolvedKeyRecord) => Promise<PolicyRoutes>): Promise<SharedRoutes> {
    const name = record.policy.id + '\n' + record.key.environment
    const entry = this.#entries.get(name)
    // an entry is never older than the record: a change since would have dropped it
    if (entry !== undefined && entry.expiresAt > this.#now()) return Promise.resolve(entry)
    if (readAtEpoch !== this.#epoch) return build(record).then((routes) => ({ routes, expiresAt: this.#now() + this.#ttlMs }))
    const building = this.#building.get(name)
    if (building !== undefined) return building
    const epoch = this.#epoch
    const built = build(record).then((routes) => {
      if (this.#building.get(name) === built) this.#building.delete(name)
      const shared = { routes, expiresAt: this.#now() + this.#ttlMs }
      if (epoch === this.#epoch) {
        if (this.#entries.size >= this.#max) this.#entries.clear()
        this.#entries.set(name, shared)
      }
      return shared
    }, (err: unknown) => {
      if (this.#building.get(name) === built) this.#building.delete(name)
      throw err
    })
    this.#building.set(name, built)
    return built
  }

  /** a change: the entries it touches go, and no build under way is kept (a key's change touches none) */
  invalidate (invalidation: Invalidation): void {
    if (invalidation.kind === 'key') return
    this.#epoch++
    this.#building.clear()
    if (invalidation.kind === 'all') {
      this.#entries.clear()
      return
    }
    for (const [name, { routes }] of this.#entries) {
      if (invalidation.kind === 'policy' ? routes.policy.id === invalidation.id : routes.partnerIds.includes(invalidation.id)) this.#entries.delete(name)
    }
  }
}
