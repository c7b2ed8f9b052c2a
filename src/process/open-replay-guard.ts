// Which store keeps x402 payment claims (docs/payments.md: a payment is accepted once): Redis in
// distributed mode, shared by every node; the embedded SQLite file otherwise, shared by the
// node's workers. Chosen here with the process's other stores.
import { join } from 'node:path'
import type { Config } from '../config/config.js'
import { RedisReplayGuard } from '../store/redis/redis-replay-guard.js'
import type { PaymentReplayGuard } from '../payments/replay-guard.js'
import { openSqliteReplayGuard } from '../store/sqlite/sqlite-replay-guard.js'
import { EMBEDDED_DB_FILE } from '../store/open-control-store.js'
import type { RedisClient } from '../store/redis/redis-client.js'

/** `redis`: the worker's data-plane connection in distributed mode (borrowed, not closed by the guard) */
export function openReplayGuard (config: Config, redis: RedisClient | null): PaymentReplayGuard & { close?: () => Promise<void> } {
  if (redis !== null) return new RedisReplayGuard(redis, { prefix: config.redisPrefix })
  return openSqliteReplayGuard(join(config.dataDir, EMBEDDED_DB_FILE), { busyTimeoutMs: config.governanceTimeoutMs })
}
