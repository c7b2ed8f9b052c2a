// What every key of one policy in one environment shares — the compiled policy and its partner
// routes (upstreams, credentials and their signers, round robins, vendor-quota orders) — built
// once per (policy, environment) and shared by the key contexts built from it. 10,000 keys of a
// policy then hold one copy instead of 10,000, and a request finds these objects in memory the
// requests of the policy's other keys keep warm (with 10,000 keys the per-key copies made the
// route lookup alone cost a microsecond more per request than with one key).
//
// An entry goes when the key contexts built from it would: on a change to its policy, to one of
// its partners (or their credentials), on a reload of everything, and after the key cache's TTL
// (so a secret re-read by a key's reload is re-read here too). A build that began before such a
// change is used by the load that asked for it but not kept, as the key cache does.
import type { Invalidation } from '../store/invalidation.js'
import type { ResolvedKeyRecord } from '../store/model.js'
import type { PolicyRoutes } from './key-context.js'

interface Entry {
  readonly routes: PolicyRoutes
  readonly expiresAt: number
}

export class SharedPolicyRoutes {
  readonly #entries = new Map<string, Entry>()
  /** builds under way, shared by the loads that need the same entry */
  readonly #building = new Map<string, Promise<PolicyRoutes>>()
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

  /** the shared routes of `record`'s policy and environment, built with `build` when there are none */
  get (record: ResolvedKeyRecord, build: (record: ResolvedKeyRecord) => Promise<PolicyRoutes>): Promise<PolicyRoutes> {
    const name = record.policy.id + '\n' + record.key.environment
    const entry = this.#entries.get(name)
    if (entry !== undefined && entry.expiresAt > this.#now()) return Promise.resolve(entry.routes)
    const building = this.#building.get(name)
    if (building !== undefined) return building
    const epoch = this.#epoch
    const built = build(record).then((routes) => {
      if (this.#building.get(name) === built) this.#building.delete(name)
      if (epoch === this.#epoch) {
        if (this.#entries.size >= this.#max) this.#entries.clear()
        this.#entries.set(name, { routes, expiresAt: this.#now() + this.#ttlMs })
      }
      return routes
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
