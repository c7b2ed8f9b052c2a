// Memory's queue of a writer's logged batches (one per event-loop turn), bounded in events: the
// drain ships from here while it keeps up. A ring of batches (event-queue.ts), so a turn costs
// one slot whatever its size.
import { joinBatches, type AuditBatch } from './audit-batch.js'
import { EventQueue } from './event-queue.js'

export class BatchQueue {
  readonly #ring: EventQueue<AuditBatch>
  readonly #maxEvents: number
  #events: number

  constructor (maxEvents: number) {
    // a batch holds at least one event, so this many slots always suffice
    this.#ring = new EventQueue(maxEvents)
    this.#maxEvents = maxEvents
    this.#events = 0
  }

  /** events queued */
  get events (): number { return this.#events }

  /** false when the batch would pass the bound (the caller lets the queue go) */
  push (batch: AuditBatch): boolean {
    if (this.#events + batch.events > this.#maxEvents || !this.#ring.push(batch)) return false
    this.#events += batch.events
    return true
  }

  /** the oldest batches as one, up to `maxEvents` events (a larger turn comes whole) */
  take (maxEvents: number): AuditBatch | null {
    const parts: AuditBatch[] = []
    let events = 0
    while (this.#ring.length > 0) {
      const next = this.#ring.peek()!
      if (parts.length > 0 && events + next.events > maxEvents) break
      parts.push(this.#ring.take(1)[0]!)
      events += next.events
    }
    this.#events -= events
    return parts.length === 0 ? null : joinBatches(parts)
  }

  /** empties the queue, returning what it held */
  clear (): AuditBatch[] {
    this.#events = 0
    return this.#ring.take(this.#ring.length)
  }
}
