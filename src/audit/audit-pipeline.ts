// One per worker process: gives every audit event its place in this writer's hash chain, queues
// it in memory, and lets the drain move it to the sink — or to disk — so that none is lost.
//
//   record() ──► [ ring queue ] ──► drain ──► sink.write(batch)    one write at a time
//      │ queue full: its oldest      │ rejected / timed out: sink down
//      ▼ batch, synchronously        ▼
//   [ spill files in seq order ] ◄── append; while down every batch follows
//      └── sink back (probe) or start() claims dead processes' files:
//          replay oldest first, delete each once its rows are in ──► sink.write(chunk)
//
// Per writer, everything on disk is older than everything in the queue and files sort by first
// seq, so replaying every file before writing from the queue again keeps the sink in seq order.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { chainHash, GENESIS_HASH } from './audit-chain.js'
import { toChained, type AuditEvent, type AuditRecorder, type ChainedAuditEvent } from './audit-event.js'
import type { AuditSink } from './audit-sink.js'
import { EventQueue } from './event-queue.js'
import { QueueDrain, type AuditPipelineHooks } from './queue-drain.js'
import { SpillDir } from './spill-dir.js'
import { isValidWriterId } from './spill-name.js'

export type { AuditPipelineHooks } from './queue-drain.js'

export interface AuditPipelineOptions {
  sink: AuditSink
  /** where spill files go; shared by the workers of a node (RELAYKEY_DATA_DIR/audit-spill) */
  spillDir: string
  /** names this writer's hash chain; a fresh uuid per process unless given. [A-Za-z0-9_-]{1,64} */
  writerId?: string
  batchSize?: number
  flushIntervalMs?: number
  /** events held in memory; beyond it the oldest batch goes to disk */
  maxQueued?: number
  /** bytes of spill files this pipeline holds; beyond it events are dropped (and counted) */
  maxSpillBytes?: number
  /** a write taking longer counts as failed: its batch is spilled and the sink marked down */
  writeTimeoutMs?: number
  /** first retry of a down sink, doubling up to probeMaxMs */
  probeMinMs?: number
  probeMaxMs?: number
  logger: Logger
  onMetrics?: AuditPipelineHooks
}

export interface AuditPipelineStats {
  queueDepth: number
  /** events ever appended to a spill file */
  spilledEvents: number
  /** bytes in the spill files waiting for the sink */
  spillBytes: number
  spillFiles: number
  /** events the sink acknowledged, live and replayed */
  written: number
  /** events lost; must stay 0 */
  dropped: number
  sinkUp: boolean
}

const DEFAULTS = {
  batchSize: 1000,
  flushIntervalMs: 100,
  maxQueued: 100_000,
  maxSpillBytes: 1024 ** 3,
  writeTimeoutMs: 2000,
  probeMinMs: 100,
  probeMaxMs: 5000,
}

export class AuditPipeline implements AuditRecorder {
  readonly #writerId: string
  readonly #batchSize: number
  readonly #flushIntervalMs: number
  readonly #log: Logger
  readonly #queue: EventQueue<ChainedAuditEvent>
  readonly #spill: SpillDir
  readonly #drain: QueueDrain
  readonly #tickBound: () => void
  #seq: number
  #prevHash: string
  #timer: NodeJS.Timeout | null
  #closed: Promise<void> | null

  constructor (options: AuditPipelineOptions) {
    const o = checkOptions(options)
    this.#writerId = options.writerId ?? randomUUID()
    this.#batchSize = o.batchSize
    this.#flushIntervalMs = o.flushIntervalMs
    this.#log = options.logger.child({ component: 'audit', writer_id: this.#writerId })
    this.#queue = new EventQueue(o.maxQueued)
    this.#spill = new SpillDir({ dir: options.spillDir, writerId: this.#writerId, maxBytes: o.maxSpillBytes })
    this.#drain = new QueueDrain({
      queue: this.#queue,
      spill: this.#spill,
      sink: options.sink,
      batchSize: o.batchSize,
      writeTimeoutMs: o.writeTimeoutMs,
      probeMinMs: o.probeMinMs,
      probeMaxMs: o.probeMaxMs,
      logger: this.#log,
      hooks: options.onMetrics ?? {},
    })
    this.#tickBound = this.#drain.tick.bind(this.#drain)
    this.#seq = 0
    this.#prevHash = GENESIS_HASH
    this.#timer = null
    this.#closed = null
  }

  get writerId (): string {
    return this.#writerId
  }

  /** claims the spill files of dead processes (replayed before anything new) and starts flushing */
  async start (): Promise<void> {
    const { files, bytes, errors } = await this.#spill.claimLeftovers()
    if (files > 0) this.#log.warn({ files, bytes }, 'replaying audit spill files left by stopped processes')
    for (const err of errors) this.#log.error({ err }, 'an audit spill file left by a stopped process could not be claimed')
    this.#timer ??= setInterval(this.#tickBound, this.#flushIntervalMs).unref()
    this.#drain.run()
  }

  /** HOT PATH: one call per request. Synchronous, O(1) amortised, never throws. */
  record (event: AuditEvent): void {
    try {
      const hash = chainHash(this.#prevHash, event)
      const chained = toChained(event, this.#writerId, this.#seq + 1, this.#prevHash, hash)
      this.#seq++
      this.#prevHash = hash
      if (this.#closed !== null) {
        // nothing drains the queue any more: straight to disk, for the next process to replay
        this.#drain.spillNow([chained])
        return
      }
      if (!this.#queue.push(chained)) {
        // full: the oldest batch goes to disk — newer than anything there, older than the rest
        // of the queue, so the order holds — and one synchronous append per batchSize events
        // keeps this O(1) amortised
        this.#drain.spillNow(this.#queue.take(this.#batchSize))
        this.#queue.push(chained)
      }
      if (this.#queue.length >= this.#batchSize) this.#drain.kick()
    } catch (err) {
      this.#drain.drop(1, err as Error, 'audit event could not be recorded')
    }
  }

  /** resolves once everything recorded so far is in the sink, or on disk while the sink is down */
  flush (): Promise<void> {
    return this.#drain.flush()
  }

  /**
   * Flushes and stops; the worker calls it on SIGTERM. Spill files still waiting for the sink
   * stay on disk, and the queue joins them if there are any, rather than holding up shutdown: the
   * next process to start replays them. Closing the sink is the caller's business.
   */
  close (): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  stats (): AuditPipelineStats {
    return {
      queueDepth: this.#queue.length,
      spilledEvents: this.#drain.spilled,
      spillBytes: this.#spill.bytes,
      spillFiles: this.#spill.fileCount,
      written: this.#drain.written,
      dropped: this.#drain.dropped,
      sinkUp: this.#drain.up,
    }
  }

  async #close (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await this.#drain.close()
  }
}

function checkOptions (options: AuditPipelineOptions): typeof DEFAULTS {
  const o = { ...DEFAULTS }
  for (const field of Object.keys(DEFAULTS) as Array<keyof typeof DEFAULTS>) {
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
  if (typeof options.spillDir !== 'string' || options.spillDir === '') throw new TypeError('audit pipeline: spillDir is required')
  return o
}
