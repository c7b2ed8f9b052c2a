// One undici Pool per partner origin (and connect timeout, which undici fixes per Pool).
// Pools outlive key contexts: a cache refresh must not open new connections.
import { buildConnector, Pool } from 'undici'
import { EgressPolicy, EgressRefusedError } from './egress-policy.js'

export interface PoolSettings {
  connectTimeoutMs: number
}

export class UpstreamPools {
  readonly #pools = new Map<string, Pool>()
  readonly #connections: number
  readonly #egress: EgressPolicy

  constructor (options: { connectionsPerOrigin?: number; egress?: EgressPolicy } = {}) {
    this.#connections = options.connectionsPerOrigin ?? 256
    this.#egress = options.egress ?? new EgressPolicy(null)
  }

  get (origin: string, settings: PoolSettings): Pool {
    const id = `${origin} ${settings.connectTimeoutMs}`
    let pool = this.#pools.get(id)
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.#connections,
        pipelining: 1,
        connect: this.#connector(settings.connectTimeoutMs),
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 600_000,
      })
      this.#pools.set(id, pool)
    }
    return pool
  }

  /**
   * undici's connector with the egress policy in front: names resolve through its lookup (only
   * allowed addresses), IP literals, which net.connect never looks up, are checked here
   */
  #connector (timeoutMs: number): buildConnector.connector {
    const egress = this.#egress
    const connect = buildConnector({ timeout: timeoutMs, lookup: egress.lookup } as buildConnector.BuildOptions)
    return (options, callback) => {
      const refusal = egress.hostRefusal(options.hostname)
      if (refusal !== null) return callback(new EgressRefusedError(`egress refused: ${refusal}`), null)
      return connect(options, callback)
    }
  }

  /** lets in-flight requests finish, then closes every connection */
  async close (): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.close()))
    this.#pools.clear()
  }
}
