// The gate between the audit queue's drain and the sink: sink.write with a deadline, and whether
// the sink is up — once down, it stays down until a probe write succeeds, probes spaced by a
// jittered, doubling backoff.
//
//   up ──(write rejected or past its deadline)──► down ──(probe timer, and the abandoned
//    ▲                                             │      write has settled)──► probe due
//    └─────────────(probe write succeeded)─────────┘◄──(probe failed: delay × 2, up to max)
//
// A write past its deadline is abandoned, not cancelled (AuditSink has no cancel). No write
// starts until it settles, so the sink never holds two batches of this writer at once.
import { performance } from 'node:perf_hooks'
import type { Logger } from 'pino'
import type { AuditBatch } from './audit-batch.js'
import type { AuditPipelineHooks } from './audit-pipeline-hooks.js'
import { AuditContentError, type AuditSink } from './audit-sink.js'

const TIMED_OUT = Symbol('timed out')
/** an abandoned write still pending after this long means a wedged sink client: raise an alarm */
const STUCK_AFTER_MS = 30_000

export interface SinkGateOptions {
  sink: AuditSink
  timeoutMs: number
  probeMinMs: number
  probeMaxMs: number
  logger: Logger
  hooks: AuditPipelineHooks
  /** called when a probe becomes due: the drain should run */
  onProbeDue: () => void
}

export class SinkGate {
  readonly #sink: AuditSink
  readonly #o: SinkGateOptions
  readonly #log: Logger
  readonly #probeBound: () => void
  readonly #settledBound: (err: Error | null) => void
  readonly #stuckBound: () => void
  #up: boolean
  #abandoned: Promise<Error | null> | null
  #stuckTimer: NodeJS.Timeout | null
  #probeTimerFired: boolean
  #probeDelay: number
  #probeTimer: NodeJS.Timeout | null
  #stopped: boolean
  #written: number

  constructor (o: SinkGateOptions) {
    this.#sink = o.sink
    this.#o = o
    this.#log = o.logger
    this.#probeBound = this.#onProbeTimer.bind(this)
    this.#settledBound = this.#onAbandonedSettled.bind(this)
    this.#stuckBound = this.#onStuck.bind(this)
    this.#up = true
    this.#abandoned = null
    this.#stuckTimer = null
    this.#probeTimerFired = false
    this.#probeDelay = o.probeMinMs
    this.#probeTimer = null
    this.#stopped = false
    this.#written = 0
  }

  get up (): boolean { return this.#up }
  /** events the sink acknowledged */
  get written (): number { return this.#written }

  /** down, its backoff has passed and nothing is pending in the sink: one probe may start */
  probeDue (): boolean {
    return !this.#up && !this.#stopped && this.#probeTimerFired && this.#abandoned === null
  }

  /** sink.write with the deadline; null once stored, else why not (AuditContentError: its content) */
  async write (batch: AuditBatch): Promise<Error | null> {
    const started = performance.now()
    let settled: Promise<Error | null>
    try {
      settled = this.#sink.write(batch).then(() => null, asError)
    } catch (err) {
      settled = Promise.resolve(asError(err))
    }
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<typeof TIMED_OUT>((resolve) => { timer = setTimeout(resolve, this.#o.timeoutMs, TIMED_OUT) })
    const result = await Promise.race([settled, deadline])
    clearTimeout(timer)
    if (result === TIMED_OUT) {
      this.#abandoned = settled
      settled.then(this.#settledBound)
      this.#stuckTimer = setTimeout(this.#stuckBound, Math.max(STUCK_AFTER_MS, 10 * this.#o.timeoutMs)).unref()
      this.#log.warn({ events: batch.events, timeout_ms: this.#o.timeoutMs }, 'audit sink write timed out')
      return new Error(`audit sink write did not finish within ${this.#o.timeoutMs} ms`)
    }
    if (result instanceof AuditContentError) return result // the drain isolates the event; no alarm yet
    if (result !== null) {
      this.#log.warn({ err: result, events: batch.events }, 'audit sink write failed')
      return result
    }
    this.#written += batch.events
    this.#o.hooks.written?.(batch.events, performance.now() - started)
    return null
  }

  /** a write failed while up */
  down (): void {
    if (!this.#up) return
    this.#up = false
    this.#log.warn('audit sink down: events wait in the local audit log until a probe write succeeds')
    this.#o.hooks.sinkDown?.()
    this.#probeDelay = this.#o.probeMinMs
    this.#scheduleProbe()
  }

  /** the outcome of the probe write that probeDue() allowed */
  probed (ok: boolean): void {
    this.#probeTimerFired = false
    if (ok) {
      this.#up = true
      this.#log.info('audit sink back: shipping from the local audit log')
      this.#o.hooks.sinkUp?.()
      return
    }
    this.#probeDelay = Math.min(this.#o.probeMaxMs, this.#probeDelay * 2)
    this.#scheduleProbe()
  }

  /** no more probes (closing) */
  stop (): void {
    this.#stopped = true
    if (this.#probeTimer !== null) clearTimeout(this.#probeTimer)
    this.#probeTimer = null
  }

  #scheduleProbe (): void {
    if (this.#stopped) return
    // jitter: the workers of every node probe the same database after the same outage
    const delay = this.#probeDelay * (0.8 + Math.random() * 0.4)
    this.#probeTimer = setTimeout(this.#probeBound, delay).unref()
  }

  #onProbeTimer (): void {
    this.#probeTimer = null
    this.#probeTimerFired = true
    if (this.probeDue()) this.#o.onProbeDue()
  }

  #onAbandonedSettled (err: Error | null): void {
    this.#abandoned = null
    if (this.#stuckTimer !== null) clearTimeout(this.#stuckTimer)
    this.#stuckTimer = null
    if (err !== null) this.#log.debug({ err }, 'abandoned audit sink write settled')
    if (this.probeDue()) this.#o.onProbeDue()
  }

  #onStuck (): void {
    this.#stuckTimer = null
    // nothing is lost (batches keep going to disk) but nothing reaches the sink until the write
    // settles: its client is likely wedged on a dead connection; a restart replays the files
    this.#log.error({ timeout_ms: this.#o.timeoutMs }, 'audit sink write has not settled long after its deadline; the sink looks wedged')
  }
}

function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}
