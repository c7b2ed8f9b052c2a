// Drains the audit queue, and the spill files, into the sink: the flush loop of AuditPipeline.
//
//         ┌──────────── up ─────────────┐  write rejected / timed out  ┌─────── down ───────┐
//   step: │ spill files? replay a chunk │ ───────────────────────────► │ batch → spill file │
//         │ else batch → sink.write     │ ◄─────────────────────────── │ probe (backoff):   │
//         └─────────────────────────────┘   probe write succeeded      │ replay one chunk   │
//                                                                      └────────────────────┘
// One loop, one sink write in flight at a time: the backpressure. Deadlines, up/down and the
// probe backoff live in SinkGate (queue-sink-gate.ts).
import type { Logger } from 'pino'
import type { ChainedAuditEvent } from './audit-event.js'
import type { AuditSink } from './audit-sink.js'
import type { EventQueue } from './event-queue.js'
import { SinkGate } from './queue-sink-gate.js'
import type { SpillAppend, SpillDir } from './spill-dir.js'

/** synchronous observers for metrics; each call is one cheap increment elsewhere */
export interface AuditPipelineHooks {
  /** events the sink acknowledged (live or replayed) and how long the write took */
  written? (events: number, ms: number): void
  spilled? (events: number, bytes: number): void
  /** events lost: must never happen; alert on it */
  dropped? (events: number): void
  sinkDown? (): void
  sinkUp? (): void
}

export interface QueueDrainOptions {
  queue: EventQueue<ChainedAuditEvent>
  spill: SpillDir
  sink: AuditSink
  batchSize: number
  writeTimeoutMs: number
  probeMinMs: number
  probeMaxMs: number
  logger: Logger
  hooks: AuditPipelineHooks
}

export class QueueDrain {
  readonly #queue: EventQueue<ChainedAuditEvent>
  readonly #spill: SpillDir
  readonly #gate: SinkGate
  readonly #batchSize: number
  readonly #log: Logger
  readonly #hooks: AuditPipelineHooks
  readonly #runBound: () => void
  #loop: Promise<void> | null
  #scheduled: boolean
  #partialDue: boolean
  #flushing: number
  #closing: boolean
  #spilled: number
  #dropped: number
  #lastDropLog: number

  constructor (o: QueueDrainOptions) {
    this.#queue = o.queue
    this.#spill = o.spill
    this.#batchSize = o.batchSize
    this.#log = o.logger
    this.#hooks = o.hooks
    this.#runBound = this.run.bind(this)
    this.#gate = new SinkGate({
      sink: o.sink,
      timeoutMs: o.writeTimeoutMs,
      probeMinMs: o.probeMinMs,
      probeMaxMs: o.probeMaxMs,
      logger: o.logger,
      hooks: o.hooks,
      onProbeDue: this.#runBound,
    })
    this.#loop = null
    this.#scheduled = false
    this.#partialDue = false
    this.#flushing = 0
    this.#closing = false
    this.#spilled = 0
    this.#dropped = 0
    this.#lastDropLog = 0
  }

  get up (): boolean { return this.#gate.up }
  get written (): number { return this.#gate.written }
  get spilled (): number { return this.#spilled }
  get dropped (): number { return this.#dropped }

  /** HOT PATH (via record): a full batch is waiting; run the loop soon, outside the caller */
  kick (): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(this.#runBound)
  }

  /** the flush interval passed: a partial batch is due too */
  tick (): void {
    this.#partialDue = true
    this.run()
  }

  run (): void {
    this.#scheduled = false
    this.#runLoop().catch((err) => this.#log.error({ err }, 'audit flush loop failed'))
  }

  async flush (): Promise<void> {
    this.#flushing++
    try {
      do await this.#runLoop()
      while (this.#queue.length > 0 || (this.#gate.up && this.#spill.fileCount > 0 && !this.#closing))
    } finally {
      this.#flushing--
    }
  }

  /** last flush: no more probes or replays; what the sink cannot take now stays on disk */
  async close (): Promise<void> {
    this.#closing = true
    this.#gate.stop()
    await this.flush()
    this.#spill.sealAll()
  }

  /** the queue-full path of record(): cannot wait, so the append is synchronous */
  spillNow (batch: ChainedAuditEvent[]): void {
    this.#spilled += this.#counted(batch.length, this.#spill.appendSync(batch))
  }

  drop (events: number, err: Error | null, msg: string): void {
    this.#dropped += events
    this.#hooks.dropped?.(events)
    // an alarm, not a flood: a full disk would otherwise log once per batch
    const now = Date.now()
    if (now - this.#lastDropLog < 1000) return
    this.#lastDropLog = now
    this.#log.error({ err, events, dropped: this.#dropped }, msg)
  }

  #runLoop (): Promise<void> {
    this.#loop ??= this.#steps().finally(() => { this.#loop = null })
    return this.#loop
  }

  async #steps (): Promise<void> {
    while (await this.#step());
  }

  /** one unit of work; false when nothing is due */
  async #step (): Promise<boolean> {
    if (!this.#gate.up) {
      // the probe is a real write: the oldest spilled chunk, or a batch if nothing is spilled
      if (this.#gate.probeDue()) {
        this.#gate.probed(this.#spill.fileCount > 0 ? await this.#replayChunk() : await this.#writeBatch())
        return true
      }
      return this.#batchDue() && this.#spillBatch()
    }
    if (this.#spill.fileCount > 0) {
      // live events wait behind the replay; when closing they join the files instead
      if (this.#closing) return this.#batchDue() && this.#spillBatch()
      if (!(await this.#replayChunk())) this.#gate.down()
      return true
    }
    if (!this.#batchDue()) return false
    if (!(await this.#writeBatch())) this.#gate.down()
    return true
  }

  #batchDue (): boolean {
    const n = this.#queue.length
    return n >= this.#batchSize || (n > 0 && (this.#partialDue || this.#flushing > 0))
  }

  #takeBatch (): ChainedAuditEvent[] {
    const batch = this.#queue.take(this.#batchSize)
    if (this.#queue.length < this.#batchSize) this.#partialDue = false
    return batch
  }

  /** a batch from the queue to the sink; on failure it goes to disk */
  async #writeBatch (): Promise<boolean> {
    const batch = this.#takeBatch()
    if (batch.length === 0 || await this.#gate.write(batch)) return true
    this.#spilled += this.#counted(batch.length, await this.#spill.append(batch))
    return false
  }

  async #spillBatch (): Promise<true> {
    const batch = this.#takeBatch()
    this.#spilled += this.#counted(batch.length, await this.#spill.append(batch))
    return true
  }

  /** the next chunk of the oldest spill file to the sink; the file goes once all of it is in */
  async #replayChunk (): Promise<boolean> {
    const file = this.#spill.oldest()!
    this.#spill.seal(file)
    let chunk
    try {
      chunk = await this.#spill.read(file, this.#batchSize)
    } catch (err) {
      // unreadable here and now: leave it on disk for a later start rather than spin on it
      this.#log.error({ err, file: file.name }, 'audit spill file could not be read; left for the next start')
      this.#spill.forget(file)
      return true
    }
    if (chunk.events.length > 0 && !(await this.#gate.write(chunk.events))) return false
    // counted once the chunk is behind us: a failed write means reading these lines again
    if (chunk.damaged > 0) this.drop(chunk.damaged, null, `audit spill file ${file.name} has damaged lines (a torn append)`)
    file.offset = chunk.nextOffset
    if (!chunk.eof) return true
    try {
      await this.#spill.remove(file)
      this.#log.info({ file: file.name }, 'audit spill file replayed')
    } catch (err) {
      // its rows are in; should a later start replay it again, the sink skips them
      this.#log.error({ err, file: file.name }, 'replayed audit spill file could not be deleted')
      this.#spill.forget(file)
    }
    return true
  }

  /** spilled events, or 0 after counting them as dropped */
  #counted (events: number, result: SpillAppend): number {
    if (events === 0) return 0
    if (result.ok) {
      this.#hooks.spilled?.(events, result.bytes)
      return events
    }
    const why = result.reason === 'full' ? 'audit spill limit (maxSpillBytes) reached' : 'audit spill append failed'
    this.drop(events, result.error, why)
    return 0
  }
}
