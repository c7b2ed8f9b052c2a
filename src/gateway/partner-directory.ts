// Which partner slugs exist, to tell 404 unknown_partner from 403 partner_not_allowed when a
// key is not bound to the requested partner. Cached so refusals cannot hammer the store.
import type { ControlStore } from '../store/control-store.js'
import { withDeadline } from './store-deadline.js'

export class PartnerDirectory {
  readonly #store: ControlStore
  readonly #ttlMs: number
  readonly #timeoutMs: number
  readonly #known = new Map<string, { exists: boolean; until: number }>()
  /** lookups in flight, shared: a store outage must not queue one query per refusal */
  readonly #looking = new Map<string, Promise<boolean>>()

  /** `timeoutMs`: how long a refusal waits for the store (then 503, as for a key lookup) */
  constructor (store: ControlStore, ttlMs: number, timeoutMs: number) {
    this.#store = store
    this.#ttlMs = ttlMs
    this.#timeoutMs = timeoutMs
  }

  async exists (slug: string): Promise<boolean> {
    const known = this.#known.get(slug)
    if (known !== undefined && known.until > Date.now()) return known.exists
    let looking = this.#looking.get(slug)
    if (looking === undefined) {
      looking = this.#lookUp(slug)
      const shared = looking
      shared.finally(() => { if (this.#looking.get(slug) === shared) this.#looking.delete(slug) }).catch(() => {})
      this.#looking.set(slug, shared)
    }
    return await withDeadline(looking, this.#timeoutMs, 'a partner lookup')
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
