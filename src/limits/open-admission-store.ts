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

export async function openAdmissionStore (config: Config, logger: Logger): Promise<AdmissionStore> {
  if (config.redisUrl === null) {
    return openSqliteAdmissionStore(join(config.dataDir, EMBEDDED_DB_FILE), { busyTimeoutMs: config.governanceTimeoutMs })
  }
  const redis = createRedisClient(config.redisUrl, { commandTimeoutMs: config.governanceTimeoutMs })
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis error'))
  await waitForRedis(redis, logger)
  return new RedisAdmissionStore(redis, { prefix: config.redisPrefix, cluster: redis instanceof Cluster })
}

/** Redis may still be starting: wait a little, then go on (decisions fail closed, /ready says 503). */
async function waitForRedis (redis: RedisClient, logger: Logger): Promise<void> {
  if (redis.status === 'ready') return
  const ready = once(redis, 'ready').then(() => true)
  const timeout = new Promise<boolean>((resolve) => setTimeout(resolve, 5_000, false).unref())
  if (!await Promise.race([ready, timeout])) logger.warn('Redis is not reachable yet; limits fail closed until it is')
}
