// Picks the limits store for the mode: Redis (Lua) in distributed mode, the shared SQLite file
// in embedded mode. Process wiring: limits/ defines AdmissionStore and admits against it, but
// does not choose a concrete store.
import { join } from 'node:path'
import { Cluster } from 'ioredis'
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import type { RedisClient } from '../store/redis/redis-client.js'
import { RedisAdmissionStore } from '../store/redis/redis-admission-store.js'
import { openSqliteAdmissionStore } from '../store/sqlite/sqlite-admission-store.js'
import { EMBEDDED_DB_FILE } from '../store/open-control-store.js'
import type { AdmissionStore } from '../limits/admission.js'
import { openDataPlaneRedis } from './data-plane-redis.js'

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
