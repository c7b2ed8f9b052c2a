// REDIS_URL → an ioredis client: `redis://`/`rediss://` for one server, or
// `redis+cluster://host1:port,host2:port` for Redis Cluster.
import { isClusterUrl, parseClusterUrl } from '../../config/redis-cluster-url.js'
import { Cluster, Redis } from 'ioredis'

export type RedisClient = Redis | Cluster

/** the admission scripts (defineCommand names, src/store/redis/redis-admission-store.ts) */
const SCRIPT_COMMANDS = ['relaykeyAdmit', 'relaykeyAdmitBatch', 'relaykeyTopUp', 'relaykeyGiveBack', 'relaykeyRefund']

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
      // ioredis groups an auto-pipeline by the slot of a command's first argument, which for a
      // script is its key count: decisions for owners on different masters made in one turn
      // went out as one pipeline and all failed. Scripts go alone, each to its keys' node.
      autoPipeliningIgnoredCommands: SCRIPT_COMMANDS,
      enableOfflineQueue: !dataPlane,
      redisOptions: { ...common, username, password },
    })
  }
  // the scripts batch their own decisions; an auto-pipeline around one call only adds its cost
  return new Redis(url, { ...common, enableAutoPipelining: true, autoPipeliningIgnoredCommands: SCRIPT_COMMANDS })
}
