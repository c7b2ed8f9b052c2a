// Writes a batch to the sink through the SinkGate, setting aside the events the store refuses for
// their content (AuditContentError): such a batch is split in halves until each refused event is
// alone; that one goes to the quarantine file, its blocks and every other event to the store.
// Writing it again could not help, so the sink is not marked down for it.
import type { Logger } from 'pino'
import { batchOfRows, rowsText, splitBatch, type AuditBatch } from './audit-batch.js'
import { eventOfRow } from './audit-copy-text.js'
import type { AuditPipelineHooks } from './audit-pipeline-hooks.js'
import { AuditContentError } from './audit-sink.js'
import type { Quarantine } from './quarantine.js'
import type { SinkGate } from './queue-sink-gate.js'

export interface QuarantiningWriterOptions {
  gate: SinkGate
  quarantine: Quarantine
  logger: Logger
  hooks: AuditPipelineHooks
  /** events lost (an event refused that the quarantine could not take either): the drain counts them */
  lost: (events: number, err: Error | null, msg: string) => void
}

export class QuarantiningWriter {
  readonly #gate: SinkGate
  readonly #quarantine: Quarantine
  readonly #logger: Logger
  readonly #hooks: AuditPipelineHooks
  readonly #lost: (events: number, err: Error | null, msg: string) => void

  constructor (o: QuarantiningWriterOptions) {
    this.#gate = o.gate
    this.#quarantine = o.quarantine
    this.#logger = o.logger
    this.#hooks = o.hooks
    this.#lost = o.lost
  }

  /**
   * Writes a batch; true once every event is stored or quarantined, false when the sink failed.
   * A batch refused for its content is split in halves until the refused events are alone:
   * those go to the quarantine, the rest to the store, and the sink is not marked down for them.
   */
  async store (batch: AuditBatch): Promise<boolean> {
    const err = await this.#gate.write(batch)
    if (err === null) return true
    if (!(err instanceof AuditContentError)) return false
    if (batch.events <= 1) return await this.#setAside(batch, err)
    const [first, second] = splitBatch(batch)
    return await this.store(first) && await this.store(second)
  }

  /** a one-row batch the store refused: the row to the quarantine, its blocks to the store */
  async #setAside (batch: AuditBatch, err: AuditContentError): Promise<boolean> {
    if (batch.events === 1) {
      let event = null
      try {
        event = eventOfRow(rowsText(batch))
        // the same event refused again (its batch read back after a failure elsewhere): once is enough
        if (!this.#quarantine.add(event, err.message)) return await this.#storeBlocks(batch)
        this.#hooks.quarantined?.(1)
        this.#logger.error({ seq: event.seq, event_id: event.id, reason: err.message, file: this.#quarantine.file },
          'audit event refused by the store for its content: quarantined, the events after it go on')
      } catch (writeErr) {
        this.#lost(1, writeErr as Error, 'an audit event the store refused could not be quarantined either')
      }
    }
    return await this.#storeBlocks(batch)
  }

  async #storeBlocks (batch: AuditBatch): Promise<boolean> {
    if (batch.blocks.length === 0) return true
    const blocksErr = await this.#gate.write(batchOfRows([], batch.blocks))
    return blocksErr === null || blocksErr instanceof AuditContentError
  }
}
