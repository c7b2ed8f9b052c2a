// The process's data-plane Redis connection in distributed mode: the limits store's, which a
// worker shares with the payment replay guard.
import { once } from 'node:events'
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import { createRedisClient, type RedisClient } from '../store/redis/redis-client.js'

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
