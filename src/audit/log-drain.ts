// Ships a writer's audit events to the sink: from memory while it keeps up, from its log on disk
// when it does not, and the leftovers of dead processes before either.
//
//        ┌─────────────── live ───────────────┐  write failed / queue full  ┌──── behind ────┐
//   step │ leftovers? ship a chunk of the     │ ──────────────────────────► │ read the log   │
//        │ oldest; else batch from memory     │ ◄────────────────────────── │ from committed │
//        └────────────────────────────────────┘  caught up with the log     │ + 1, ship it   │
//                                                                            └────────────────┘
// Every event is in the log before it is in memory's queue, so falling behind only means
// dropping the queue and reading the same events back from disk. One loop, one sink write in
// flight at a time: the backpressure. Deadlines, up/down and probe backoff live in SinkGate;
// setting aside the events the store refuses for their content, in QuarantiningWriter.
import type { Logger } from 'pino'
import { batchOfRows, type AuditBatch } from './audit-batch.js'
import { rowSeq } from './audit-copy-text.js'
import type { AuditLog, LogSegment } from './audit-log.js'
import type { AuditPipelineHooks } from './audit-pipeline-hooks.js'
import type { AuditSink } from './audit-sink.js'
import type { BatchQueue } from './batch-queue.js'
import type { LeftoverLogs } from './leftover-logs.js'
import type { Quarantine } from './quarantine.js'
import { QuarantiningWriter } from './quarantining-writer.js'
import { SinkGate } from './queue-sink-gate.js'

export interface LogDrainOptions {
  queue: BatchQueue
  log: AuditLog
  leftovers: LeftoverLogs
  quarantine: Quarantine
  sink: AuditSink
  batchSize: number
  writeTimeoutMs: number
  probeMinMs: number
  probeMaxMs: number
  logger: Logger
  hooks: AuditPipelineHooks
}

type Shipped = 'idle' | 'ok' | 'failed'

export class LogDrain {
  readonly #o: LogDrainOptions
  readonly #queue: BatchQueue
  readonly #log: AuditLog
  readonly #leftovers: LeftoverLogs
  readonly #gate: SinkGate
  readonly #writer: QuarantiningWriter
  readonly #logger: Logger
  readonly #runBound: () => void
  #live: boolean
  /** every own event up to here is in the sink (or counted as dropped) */
  #committed: number
  /** while behind: where the next read of the log starts */
  #segment: LogSegment | null
  #offset: number
  #loop: Promise<void> | null
  #scheduled: boolean
  #partialDue: boolean
  #flushing: number
  #closing: boolean
  #replayed: number
  #dropped: number
  #lastDropLog: number
  /** [first, last] seq ranges in memory's queue that the log could not write */
  #unlogged: Array<[number, number]>

  constructor (o: LogDrainOptions) {
    this.#o = o
    this.#queue = o.queue
    this.#log = o.log
    this.#leftovers = o.leftovers
    this.#logger = o.logger
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
    this.#writer = new QuarantiningWriter({
      gate: this.#gate,
      quarantine: o.quarantine,
      logger: o.logger,
      hooks: o.hooks,
      lost: this.drop.bind(this),
    })
    this.#live = true
    this.#committed = 0
    this.#segment = null
    this.#offset = 0
    this.#loop = null
    this.#scheduled = false
    this.#partialDue = false
    this.#flushing = 0
    this.#closing = false
    this.#replayed = 0
    this.#dropped = 0
    this.#lastDropLog = 0
    this.#unlogged = []
  }

  /** events recorded now go to memory's queue too (else they are read back from the log) */
  get live (): boolean { return this.#live }
  get up (): boolean { return this.#gate.up }
  get written (): number { return this.#gate.written }
  get replayed (): number { return this.#replayed }
  get dropped (): number { return this.#dropped }
  get committed (): number { return this.#committed }

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
    this.#runLoop().catch((err) => this.#logger.error({ err }, 'audit flush loop failed'))
  }

  /**
   * memory's queue is full, or the sink failed (`failed`: the batch it refused): drop it, the
   * same events are read back from the log
   */
  fallBehind (failed: AuditBatch | null = null): void {
    if (!this.#live) return
    this.#live = false
    const dropped = this.#queue.clear()
    if (failed !== null) dropped.push(failed)
    // those the log could not write are in neither place now
    if (this.#unlogged.length > 0) {
      let lost = 0
      for (const batch of dropped) lost += this.#unloggedIn(batch)
      this.#unlogged.length = 0
      this.drop(lost, null, 'audit events lost: the log could not write them and the queue let them go')
    }
    this.#segment = null
    this.kick()
  }

  /** the log could not write events first..last: lost unless memory's queue still ships them */
  logWriteFailed (first: number, last: number): void {
    if (this.#live) this.#unlogged.push([first, last])
    else this.drop(last - first + 1, null, 'audit events lost: the log could not write them while shipping from it')
  }

  /** until everything recorded is in the sink, or the sink is down (it is all in the log then) */
  async flush (): Promise<void> {
    this.#flushing++
    try {
      this.#log.flush()
      do await this.#runLoop()
      while (this.#gate.up && !this.#closing && (!this.#live || this.#queue.events > 0 || this.#leftovers.count > 0))
    } finally {
      this.#flushing--
    }
  }

  /** last flush: no probes, no reading back; what the sink cannot take now stays in the log */
  async close (): Promise<void> {
    this.#closing = true
    this.#gate.stop()
    this.#flushing++
    try {
      this.#log.flush()
      // a write in flight first: until it settles, nobody knows whether its events are stored
      if (this.#loop !== null) await this.#loop
      // a loop already running may have looked at the queue before the last events came
      while (this.#live && this.#gate.up && this.#queue.events > 0) await this.#runLoop()
    } finally {
      this.#flushing--
    }
  }

  drop (events: number, err: Error | null, msg: string): void {
    if (events <= 0) return
    this.#dropped += events
    this.#o.hooks.dropped?.(events)
    // an alarm, not a flood: a full disk would otherwise log once per turn
    const now = Date.now()
    if (now - this.#lastDropLog < 1000) return
    this.#lastDropLog = now
    this.#logger.error({ err, events, dropped: this.#dropped }, msg)
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
      if (this.#closing || !this.#gate.probeDue()) return false
      // the probe is a real write of what is due next
      this.#gate.probed(await this.#shipNext() !== 'failed')
      return true
    }
    const shipped = await this.#shipNext()
    if (shipped === 'failed') this.#gate.down()
    return shipped === 'ok'
  }

  #shipNext (): Promise<Shipped> {
    if (this.#leftovers.count > 0 && !this.#closing) return this.#shipLeftover()
    if (!this.#live) return this.#closing ? Promise.resolve('idle') : this.#shipFromLog()
    return this.#shipFromMemory()
  }

  async #shipFromMemory (): Promise<Shipped> {
    const n = this.#queue.events
    if (!(n >= this.#o.batchSize || (n > 0 && (this.#partialDue || this.#flushing > 0)))) return 'idle'
    const batch = this.#queue.take(this.#o.batchSize)!
    if (this.#queue.events < this.#o.batchSize) this.#partialDue = false
    if (await this.#writer.store(batch)) {
      this.#commit(batch.lastSeq)
      return 'ok'
    }
    // the batch and everything after it are in the log: ship them from there
    this.fallBehind(batch)
    return 'failed'
  }

  /** the next chunk of this writer's log after the last committed event */
  async #shipFromLog (): Promise<Shipped> {
    let segment = this.#segment
    if (segment === null || this.#offset >= segment.bytes) {
      const next = segment === null ? this.#firstUncommitted() : this.#nextAfter(segment)
      if (next === null) return this.#caughtUp()
      segment = this.#segment = next
      this.#offset = 0
    }
    const offsetBefore = this.#offset
    let chunk
    try {
      chunk = await this.#log.read(segment, this.#offset, this.#o.batchSize)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        // an I/O error, no file descriptor free: try again after the sink's backoff
        this.#logger.error({ err, file: segment.name }, 'audit log segment could not be read; trying again')
        return 'failed'
      }
      // deleted from outside: what it held past the last committed event is gone
      this.#skipRestOf(segment, 'audit log segment deleted before it was shipped')
      return 'ok'
    }
    if (chunk.nextOffset === this.#offset && chunk.rows.length === 0 && chunk.blocks.length === 0) {
      // the file is shorter than what was written to it (truncated from outside)
      this.#skipRestOf(segment, 'audit log segment shorter than what was written to it')
      return 'ok'
    }
    let { rows, blocks, damaged, nextOffset } = chunk
    // The end of the current segment: what turns wrote while this read was on its way is read
    // now, synchronously, and memory's queue takes over from here. No turn can come in between,
    // so nothing falls between the log and the queue; under steady traffic the drain would
    // otherwise chase the growing file for ever.
    const tail = chunk.eof ? this.#log.readTailSync(segment, nextOffset) : null
    if (tail !== null) {
      rows = rows.concat(tail.rows)
      blocks = blocks.concat(tail.blocks)
      damaged += tail.damaged
      nextOffset = tail.nextOffset
    }
    // rows already committed are left out; blocks are not (the sink skips those it has): a
    // block line may come in the chunk after its rows
    const batch = batchOfRows(rows.filter((row) => rowSeq(row) > this.#committed), blocks)
    if (damaged > 0) this.drop(damaged, null, `audit log segment ${segment.name} has damaged lines`)
    this.#offset = nextOffset
    if (tail !== null) this.#goLive()
    if (batch.events > 0 || batch.blocks.length > 0) {
      if (!(await this.#writer.store(batch))) {
        // its rows are in the log: read back from the last committed one
        if (this.#live) this.fallBehind()
        else this.#offset = offsetBefore
        return 'failed'
      }
      this.#replayed += batch.events
      this.#o.hooks.replayed?.(batch.events)
      if (batch.events > 0) this.#commit(batch.lastSeq)
    }
    return 'ok'
  }

  /** events of `batch` the log could not write */
  #unloggedIn (batch: AuditBatch): number {
    let n = 0
    for (const [first, last] of this.#unlogged) {
      const from = Math.max(first, batch.firstSeq)
      const to = Math.min(last, batch.lastSeq)
      if (to >= from) n += to - from + 1
    }
    return n
  }

  /**
   * Every written row has been read back: from now on memory's queue carries new ones. The
   * turn's rows not yet written are written only now, after live is set, so they go to the
   * queue too (checking after writing them would chase a steady stream of turns for ever).
   */
  #caughtUp (): Shipped {
    const segment = this.#segment
    if (segment === null ? this.#firstUncommitted() !== null : this.#offset < segment.bytes || this.#nextAfter(segment) !== null) return 'ok'
    this.#goLive()
    return 'ok'
  }

  /** every row written so far is read (and shipped, or being shipped): memory's queue takes over */
  #goLive (): void {
    this.#segment = null
    this.#offset = 0
    this.#live = true
    // this turn's rows, not written yet, go to the queue as they are written
    this.#log.flush()
  }

  /** the rest of a segment cannot be read: its events after the last committed one are lost */
  #skipRestOf (segment: LogSegment, why: string): void {
    this.drop(segment.lastSeq - Math.max(this.#committed, segment.firstSeq - 1), null, `${why}: ${segment.name}`)
    this.#committed = Math.max(this.#committed, segment.lastSeq)
    this.#offset = segment.bytes
  }

  #firstUncommitted (): LogSegment | null {
    for (const segment of this.#log.segments()) {
      if (segment.lastSeq > this.#committed) return segment
    }
    return null
  }

  /** the segment after `segment`, which may have been deleted meanwhile (all of it committed) */
  #nextAfter (segment: LogSegment): LogSegment | null {
    for (const next of this.#log.segments()) {
      if (next.firstSeq > segment.firstSeq) return next
    }
    return null
  }

  #commit (seq: number): void {
    if (seq <= this.#committed) return
    this.#committed = seq
    this.#log.committed(seq)
    while (this.#unlogged.length > 0 && this.#unlogged[0]![1] <= seq) this.#unlogged.shift()
  }

  /** the next chunk of the oldest leftover file; the file goes once all of it is in */
  async #shipLeftover (): Promise<Shipped> {
    const file = this.#leftovers.oldest()!
    let chunk
    try {
      chunk = await this.#leftovers.read(file, this.#o.batchSize)
    } catch (err) {
      // unreadable here and now: leave it on disk for a later start rather than spin on it
      this.#logger.error({ err, file: file.name }, 'audit log left by a stopped process could not be read; left for the next start')
      this.#leftovers.forget(file)
      return 'ok'
    }
    if (chunk.rows.length > 0 || chunk.blocks.length > 0) {
      if (!(await this.#writer.store(batchOfRows(chunk.rows, chunk.blocks)))) return 'failed'
      this.#replayed += chunk.rows.length
      this.#o.hooks.replayed?.(chunk.rows.length)
    }
    // counted once the chunk is behind us: a failed write means reading these lines again
    if (chunk.damaged > 0) this.drop(chunk.damaged, null, `audit log ${file.name} has damaged lines (a torn append)`)
    file.offset = chunk.nextOffset
    if (!chunk.eof) return 'ok'
    try {
      await this.#leftovers.remove(file)
      this.#logger.info({ file: file.name }, 'audit log left by a stopped process is in the database')
    } catch (err) {
      // its rows are in; should a later start ship it again, the sink skips them
      this.#logger.error({ err, file: file.name }, 'shipped audit log could not be deleted')
      this.#leftovers.forget(file)
    }
    return 'ok'
  }
}
