// Payment claims in Redis (distributed mode): one SET NX PX per claim, atomic on a single Redis
// and on Redis Cluster alike.
import { GovernanceUnavailableError } from '../../errors.js'
import type { RedisClient } from './redis-client.js'
import type { PaymentReplayGuard } from '../../payments/replay-guard.js'

export interface RedisReplayGuardOptions {
  /** RELAYKEY_REDIS_PREFIX */
  prefix: string
}

export class RedisReplayGuard implements PaymentReplayGuard {
  readonly #redis: RedisClient
  readonly #prefix: string

  /** `redis` is the caller's (a data-plane client with a command timeout); it stays open */
  constructor (redis: RedisClient, options: RedisReplayGuardOptions) {
    this.#redis = redis
    this.#prefix = options.prefix
  }

  async claim (key: string, ttlMs: number): Promise<boolean> {
    try {
      return await this.#redis.set(this.#name(key), '1', 'PX', Math.ceil(ttlMs), 'NX') === 'OK'
    } catch (err) {
      throw new GovernanceUnavailableError('Redis did not answer the payment claim', err)
    }
  }

  async release (key: string): Promise<void> {
    try {
      await this.#redis.del(this.#name(key))
    } catch (err) {
      throw new GovernanceUnavailableError('Redis did not take the payment release', err)
    }
  }

  // The hash tag is the payment's own: a shared tag such as {payment} would put every claim of
  // the deployment in one slot, on one node of a cluster.
  #name (key: string): string {
    return `${this.#prefix}:{payment:${key}}`
  }
}
