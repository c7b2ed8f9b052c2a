// One per worker process: encodes every audit event once (a COPY text row, its seq in this
// writer's sequence), writes it to the writer's local log before its request's answer ends, and
// lets the drain ship it to the sink.
//
//   record(event, waiter) ──► row ──► [ this turn ] ──block hash, one write()──► segment files
//                                          │                      └─► waiters: the answers end
//                                          └──► [ batch queue ] ──► drain ──► sink.write(batch)
//            live only: a failed write or a full queue drops it, and the drain reads the same
//            rows back from the log; start() ships dead processes' logs first
//
// A segment is deleted once every event in it is in the sink. Nothing an answered request
// recorded can be lost to a crash of the process: its line was written before the answer ended.
import { randomUUID } from 'node:crypto'
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import type { AuditBatch } from './audit-batch.js'
import { CopyRowEncoder } from './audit-copy-text.js'
import type { AuditEvent, AuditRecorder } from './audit-event.js'
import { AuditLog, type FsyncPolicy, type LogWaiter } from './audit-log.js'
import type { AuditPipelineHooks } from './audit-pipeline-hooks.js'
import type { AuditSink } from './audit-sink.js'
import { BatchQueue } from './batch-queue.js'
import { LeftoverLogs } from './leftover-logs.js'
import { LogDrain } from './log-drain.js'
import { Quarantine } from './quarantine.js'
import { UsageCells } from './usage-cells.js'
import { isValidWriterId, newOwner } from './log-file-name.js'

export interface AuditPipelineOptions {
  sink: AuditSink
  /** where the log segments go; shared by the workers of a node (RELAYKEY_DATA_DIR/audit-log) */
  logDir: string
  /** more directories whose leftovers to ship at start: older releases' spill files */
  legacyDirs?: string[]
  /** where events the store refuses for their content go; default: audit-quarantine beside logDir */
  quarantineDir?: string
  /** RELAYKEY_AUDIT_FSYNC: 'always', 'never' or an interval in ms (default 1000) */
  fsync?: FsyncPolicy
  /** names this writer's hash chain; a fresh uuid per process unless given. [A-Za-z0-9_-]{1,64} */
  writerId?: string
  batchSize?: number
  flushIntervalMs?: number
  /** events held in memory; beyond it the drain reads them back from the log instead */
  maxQueued?: number
  /** bytes of log this writer may hold; beyond it events are not logged (and lost if not shipped from memory) */
  maxLogBytes?: number
  /** a log segment rolls over at this size */
  segmentBytes?: number
  /** a write taking longer counts as failed: the sink is marked down, its events stay in the log */
  writeTimeoutMs?: number
  /** first retry of a down sink, doubling up to probeMaxMs */
  probeMinMs?: number
  probeMaxMs?: number
  logger: Logger
  onMetrics?: AuditPipelineHooks
}

export interface AuditPipelineStats {
  queueDepth: number
  /** events shipped from a log on disk rather than from memory */
  replayedEvents: number
  /** bytes of log segments on disk: this writer's and the leftovers it is shipping */
  logBytes: number
  logFiles: number
  /** events that could not be written to the log (disk full, its bound reached) */
  logWriteFailures: number
  /** events the sink acknowledged, from memory and from disk */
  written: number
  /** events lost; must stay 0 */
  dropped: number
  /** events the store refused for their content, in the quarantine file */
  quarantined: number
  sinkUp: boolean
}

// Batches of up to 4,000 events, or whatever a quarter second brought: each batch costs the store
// a transaction and its fixed work, which at 100 ms and 1,000 was about a quarter of PostgreSQL's
// CPU per event at 6,000 events/s (bench/audit-write.ts). The events are safe in the log
// meanwhile; what waits is only their showing up in queries.
export const AUDIT_PIPELINE_DEFAULTS = {
  batchSize: 4000,
  flushIntervalMs: 250,
  maxQueued: 100_000,
  maxLogBytes: 1024 ** 3,
  segmentBytes: 8 * 1024 ** 2,
  writeTimeoutMs: 2000,
  probeMinMs: 100,
  probeMaxMs: 5000,
}

export class AuditPipeline implements AuditRecorder {
  readonly #writerId: string
  readonly #batchSize: number
  readonly #flushIntervalMs: number
  readonly #logger: Logger
  readonly #queue: BatchQueue
  readonly #encoder: CopyRowEncoder
  readonly #log: AuditLog
  readonly #leftovers: LeftoverLogs
  readonly #quarantine: Quarantine
  readonly #drain: LogDrain
  readonly #tickBound: () => void
  #seq: number
  // the usage of the events recorded this turn: it goes along with the turn's batch
  #turnCells: UsageCells
  #logWriteFailures: number
  #lastFailureLog: number
  #timer: NodeJS.Timeout | null
  #closed: Promise<void> | null

  constructor (options: AuditPipelineOptions) {
    const o = checkOptions(options)
    this.#writerId = options.writerId ?? randomUUID()
    this.#batchSize = o.batchSize
    this.#flushIntervalMs = o.flushIntervalMs
    this.#logger = options.logger.child({ component: 'audit', writer_id: this.#writerId })
    this.#queue = new BatchQueue(o.maxQueued)
    this.#encoder = new CopyRowEncoder()
    const owner = newOwner()
    this.#log = new AuditLog({
      dir: options.logDir,
      writerId: this.#writerId,
      owner,
      maxBytes: o.maxLogBytes,
      segmentBytes: o.segmentBytes,
      fsync: options.fsync ?? 1000,
      onBatch: this.#logged.bind(this),
      onWriteFailed: this.#logWriteFailed.bind(this),
    })
    this.#leftovers = new LeftoverLogs([...(options.legacyDirs ?? []), options.logDir], owner)
    this.#quarantine = new Quarantine(options.quarantineDir ?? join(dirname(options.logDir), 'audit-quarantine'), this.#writerId)
    this.#drain = new LogDrain({
      queue: this.#queue,
      log: this.#log,
      leftovers: this.#leftovers,
      quarantine: this.#quarantine,
      sink: options.sink,
      batchSize: o.batchSize,
      writeTimeoutMs: o.writeTimeoutMs,
      probeMinMs: o.probeMinMs,
      probeMaxMs: o.probeMaxMs,
      logger: this.#logger,
      hooks: options.onMetrics ?? {},
    })
    this.#tickBound = this.#drain.tick.bind(this.#drain)
    this.#seq = 0
    this.#turnCells = new UsageCells()
    this.#logWriteFailures = 0
    this.#lastFailureLog = 0
    this.#timer = null
    this.#closed = null
  }

  get writerId (): string {
    return this.#writerId
  }

  /** claims the logs of dead processes (shipped before anything new) and starts flushing */
  async start (): Promise<void> {
    const { files, bytes, errors } = await this.#leftovers.claim()
    if (files > 0) this.#logger.warn({ files, bytes }, 'shipping audit logs left by stopped processes')
    for (const err of errors) this.#logger.error({ err }, 'an audit log left by a stopped process could not be claimed')
    this.#timer ??= setInterval(this.#tickBound, this.#flushIntervalMs).unref()
    this.#drain.run()
  }

  /**
   * HOT PATH: one call per request. Synchronous, O(1) amortised, never throws. `waiter` is told
   * once the event is in the log (at the end of this event-loop turn): the request's answer
   * ends then, not before.
   */
  record (event: AuditEvent, waiter: LogWaiter | null = null): void {
    const seq = this.#seq + 1
    let row: string
    try {
      row = this.#encoder.eventRow(event, this.#writerId, seq)
    } catch (err) {
      // ts is not a time: nothing can store this event
      this.#drain.drop(1, err as Error, 'audit event could not be recorded')
      waiter?.auditLogged()
      return
    }
    this.#seq = seq
    this.#turnCells.add(event)
    this.#log.append(seq, event.ts, row, waiter)
    // nothing ships any more: into the log now, for the next process to ship
    if (this.#closed !== null) this.#log.flush()
  }

  /** resolves once everything recorded so far is in the sink, or (sink down) in the log */
  flush (): Promise<void> {
    return this.#drain.flush()
  }

  /**
   * Ships what memory holds and stops; the worker calls it on SIGTERM. What the sink cannot take
   * now stays in the log rather than holding up shutdown: the next process to start ships it.
   * Closing the sink is the caller's business.
   */
  close (): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  stats (): AuditPipelineStats {
    return {
      queueDepth: this.#queue.events,
      replayedEvents: this.#drain.replayed,
      logBytes: this.#log.bytes + this.#leftovers.bytes,
      logFiles: this.#log.segmentCount + this.#leftovers.count,
      logWriteFailures: this.#logWriteFailures,
      written: this.#drain.written,
      dropped: this.#drain.dropped,
      quarantined: this.#quarantine.count,
      sinkUp: this.#drain.up,
    }
  }

  async #close (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await this.#drain.close()
    const shipped = this.#drain.live && this.#queue.events === 0 ? this.#seq : this.#drain.committed
    await this.#log.close(shipped)
  }

  /** a turn's rows, as the log wrote them (or failed to): memory's queue ships them while live */
  #logged (batch: AuditBatch): void {
    batch.cells = this.#turnCells
    this.#turnCells = new UsageCells()
    if (!this.#drain.live) return
    if (!this.#queue.push(batch)) return this.#drain.fallBehind()
    if (this.#queue.events >= this.#batchSize) this.#drain.kick()
  }

  #logWriteFailed (events: number, firstSeq: number, err: Error | null): void {
    this.#logWriteFailures += events
    this.#drain.logWriteFailed(firstSeq, firstSeq + events - 1)
    // an alarm, not a flood: a full disk would otherwise log once per turn
    const now = Date.now()
    if (now - this.#lastFailureLog < 1000) return
    this.#lastFailureLog = now
    const why = err === null ? 'the audit log is at its size bound (maxLogBytes)' : 'the audit log could not be written'
    this.#logger.error({ err, events, first_seq: firstSeq, failures: this.#logWriteFailures }, `${why}; those events are lost if the process stops before they are shipped`)
  }
}

function checkOptions (options: AuditPipelineOptions): typeof AUDIT_PIPELINE_DEFAULTS {
  const o = { ...AUDIT_PIPELINE_DEFAULTS }
  for (const field of Object.keys(AUDIT_PIPELINE_DEFAULTS) as Array<keyof typeof AUDIT_PIPELINE_DEFAULTS>) {
    const value = options[field]
    if (value === undefined) continue
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new TypeError(`audit pipeline: ${field} must be a positive integer, got ${String(value)}`)
    }
    o[field] = value
  }
  if (o.maxQueued < o.batchSize) throw new TypeError(`audit pipeline: maxQueued (${o.maxQueued}) must be at least batchSize (${o.batchSize})`)
  if (o.probeMaxMs < o.probeMinMs) throw new TypeError('audit pipeline: probeMaxMs must be at least probeMinMs')
  if (options.writerId !== undefined && !isValidWriterId(options.writerId)) {
    throw new TypeError(`audit pipeline: writerId must match [A-Za-z0-9_-]{1,64}, got ${JSON.stringify(options.writerId)}`)
  }
  if (typeof options.logDir !== 'string' || options.logDir === '') throw new TypeError('audit pipeline: logDir is required')
  const fsync = options.fsync
  if (fsync !== undefined && fsync !== 'always' && fsync !== 'never' && !(Number.isSafeInteger(fsync) && fsync >= 1)) {
    throw new TypeError(`audit pipeline: fsync must be 'always', 'never' or a positive number of ms, got ${String(fsync)}`)
  }
  return o
}
