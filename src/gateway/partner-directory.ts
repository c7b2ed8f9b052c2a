// Which partner slugs exist, to tell 404 unknown_partner from 403 partner_not_allowed when a
// key is not bound to the requested partner. Cached so refusals cannot hammer the store.
import type { ControlStore } from '../store/control-store.js'
import { SharedLookups } from './shared-lookups.js'

export class PartnerDirectory {
  readonly #store: ControlStore
  readonly #ttlMs: number
  readonly #known = new Map<string, { exists: boolean; until: number }>()
  /** shared: a store outage must not queue one query per refusal */
  readonly #looking: SharedLookups<boolean>

  /** `timeoutMs`: how long a refusal waits for the store (then 503, as for a key lookup) */
  constructor (store: ControlStore, ttlMs: number, timeoutMs: number) {
    this.#store = store
    this.#ttlMs = ttlMs
    this.#looking = new SharedLookups(timeoutMs, 'a partner lookup')
  }

  async exists (slug: string): Promise<boolean> {
    const known = this.#known.get(slug)
    if (known !== undefined && known.until > Date.now()) return known.exists
    return await this.#looking.get(slug, () => this.#lookUp(slug))
  }

  async #lookUp (slug: string): Promise<boolean> {
    const now = Date.now()
    const exists = (await this.#store.getPartner(slug)) !== null
    if (this.#known.size > 10_000) this.#known.clear()
    this.#known.set(slug, { exists, until: now + this.#ttlMs })
    return exists
  }

  /** any partner change may add or remove a slug */
  clear (): void {
    this.#known.clear()
    this.#looking.clear()
  }
}
