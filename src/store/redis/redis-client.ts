// REDIS_URL → an ioredis client: `redis://`/`rediss://` for one server, or
// `redis+cluster://host1:port,host2:port` for Redis Cluster.
import { isClusterUrl, parseClusterUrl } from './cluster-url.js'
import { Cluster, Redis } from 'ioredis'

export type RedisClient = Redis | Cluster

export interface RedisClientOptions {
  lazyConnect?: boolean
  /**
   * Data-plane clients: a command that has no answer within this many ms fails (the caller
   * answers 503 or fails open), and nothing queues while disconnected.
   */
  commandTimeoutMs?: number
}

export function createRedisClient (url: string, options: RedisClientOptions = {}): RedisClient {
  const dataPlane = options.commandTimeoutMs !== undefined
  const common = {
    lazyConnect: options.lazyConnect ?? false,
    maxRetriesPerRequest: dataPlane ? 0 : 1,
    ...(dataPlane ? { commandTimeout: options.commandTimeoutMs, enableOfflineQueue: false } : {}),
  }
  if (isClusterUrl(url)) {
    const { hosts, username, password } = parseClusterUrl(url)
    return new Cluster(hosts, {
      lazyConnect: common.lazyConnect,
      enableAutoPipelining: true,
      enableOfflineQueue: !dataPlane,
      redisOptions: { ...common, username, password },
    })
  }
  return new Redis(url, { ...common, enableAutoPipelining: true })
}
