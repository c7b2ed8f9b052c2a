// One undici Pool per partner origin (and connect timeout, which undici fixes per Pool).
// Pools outlive key contexts: a cache refresh must not open new connections.
import { Pool } from 'undici'

export interface PoolSettings {
  connectTimeoutMs: number
}

export class UpstreamPools {
  readonly #pools = new Map<string, Pool>()
  readonly #connections: number

  constructor (options: { connectionsPerOrigin?: number } = {}) {
    this.#connections = options.connectionsPerOrigin ?? 256
  }

  get (origin: string, settings: PoolSettings): Pool {
    const id = `${origin} ${settings.connectTimeoutMs}`
    let pool = this.#pools.get(id)
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.#connections,
        pipelining: 1,
        connect: { timeout: settings.connectTimeoutMs },
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 600_000,
      })
      this.#pools.set(id, pool)
    }
    return pool
  }

  /** lets in-flight requests finish, then closes every connection */
  async close (): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.close()))
    this.#pools.clear()
  }
}
