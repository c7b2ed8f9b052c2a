// Picks the limits store for the mode: Redis (Lua) in distributed mode, the shared SQLite file
// in embedded mode.
import { once } from 'node:events'
import { join } from 'node:path'
import { Cluster } from 'ioredis'
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import { createRedisClient, type RedisClient } from '../store/redis/redis-client.js'
import { RedisAdmissionStore } from '../store/redis/redis-admission-store.js'
import { openSqliteAdmissionStore } from '../store/sqlite/sqlite-admission-store.js'
import { EMBEDDED_DB_FILE } from '../store/open-control-store.js'
import type { AdmissionStore } from './admission.js'

/**
 * `redis`: the process's data-plane connection when it already has one (a worker shares it with
 * the payment replay guard); the store disconnects it when closed.
 */
export async function openAdmissionStore (config: Config, logger: Logger, redis?: RedisClient): Promise<AdmissionStore> {
  if (config.redisUrl === null) {
    return openSqliteAdmissionStore(join(config.dataDir, EMBEDDED_DB_FILE), { busyTimeoutMs: config.governanceTimeoutMs })
  }
  const client = redis ?? await openDataPlaneRedis(config, logger)
  return new RedisAdmissionStore(client, { prefix: config.redisPrefix, cluster: client instanceof Cluster })
}

/**
 * A data-plane Redis connection (commands time out at RELAYKEY_GOVERNANCE_TIMEOUT_MS, nothing
 * queues while disconnected). Redis may still be starting: wait a little, then go on
 * (decisions fail closed, /ready says 503).
 */
export async function openDataPlaneRedis (config: Config, logger: Logger): Promise<RedisClient> {
  const redis = createRedisClient(config.redisUrl!, { commandTimeoutMs: config.governanceTimeoutMs })
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis error'))
  if (redis.status === 'ready') return redis
  const ready = once(redis, 'ready').then(() => true)
  const timeout = new Promise<boolean>((resolve) => setTimeout(resolve, 5_000, false).unref())
  if (!await Promise.race([ready, timeout])) logger.warn('Redis is not reachable yet; limits fail closed until it is')
  return redis
}
