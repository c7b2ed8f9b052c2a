// Carries invalidations between nodes: the node whose admin API made a change publishes it on
// a Redis channel; every node's primary receives it and hands it to its own workers.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { createRedisClient, type RedisClient } from '../store/redis/redis-client.js'
import { isInvalidation, type Invalidation, type InvalidationPublisher } from '../store/invalidation.js'

export class RedisInvalidationRelay implements InvalidationPublisher {
  readonly #publisher: RedisClient
  readonly #subscriber: RedisClient
  readonly #nodeId = randomUUID()
  readonly #logger: Logger
  readonly #channel: string

  /** `deliver` receives changes made on other nodes */
  constructor (redisUrl: string, prefix: string, logger: Logger, deliver: (invalidation: Invalidation) => void) {
    this.#logger = logger
    this.#channel = `${prefix}:invalidations`
    this.#publisher = createRedisClient(redisUrl)
    this.#subscriber = createRedisClient(redisUrl)
    this.#publisher.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis publisher error'))
    this.#subscriber.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis subscriber error'))
    this.#subscriber.on('message', (_channel: string, message: string) => {
      let parsed: { node?: unknown; invalidation?: unknown }
      try {
        parsed = JSON.parse(message)
      } catch {
        return
      }
      if (parsed.node !== this.#nodeId && isInvalidation(parsed.invalidation)) deliver(parsed.invalidation)
    })
    // A reconnect may have missed messages: drop every cached context to be safe.
    this.#subscriber.on('ready', () => deliver({ kind: 'all' }))
  }

  async start (): Promise<void> {
    await this.#subscriber.subscribe(this.#channel)
  }

  publish (invalidation: Invalidation): void {
    this.#publisher.publish(this.#channel, JSON.stringify({ node: this.#nodeId, invalidation })).catch((err: Error) => {
      // Other nodes still converge through the key cache TTL.
      this.#logger.error({ err: err.message, invalidation }, 'could not publish an invalidation')
    })
  }

  async close (): Promise<void> {
    this.#subscriber.disconnect()
    await this.#publisher.quit().catch(() => {})
  }
}
