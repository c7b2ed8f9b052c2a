// Wraps the invalidation publisher so a failing channel cannot turn a committed change into a
// 500: the change stands, cached contexts still expire by TTL, and the failure is logged loudly.
import type { Logger } from 'pino'
import type { Invalidation, InvalidationPublisher } from '../store/invalidation.js'

export class LoggedPublisher implements InvalidationPublisher {
  readonly #inner: InvalidationPublisher
  readonly #logger: Logger

  constructor (inner: InvalidationPublisher, logger: Logger) {
    this.#inner = inner
    this.#logger = logger
  }

  publish (invalidation: Invalidation): void {
    try {
      this.#inner.publish(invalidation)
    } catch (err) {
      this.#logger.error({ invalidation, err: { type: (err as Error)?.name, message: (err as Error)?.message } },
        'admin: publishing an invalidation failed; caches refresh only when their TTL ends')
    }
  }
}
