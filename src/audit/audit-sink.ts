// Where audit events end up: PostgreSQL (COPY) or SQLite (batched INSERT). Both run
// test/audit/audit-sink.contract.ts.
import type { AuditBatch } from './audit-batch.js'

export interface AuditSink {
  /**
   * Stores the batch's rows and blocks durably, or rejects and stores none of it. Idempotent:
   * events already stored (same id and ts) and blocks already stored (same writer and first
   * seq) are skipped, so a replay after a partial failure is safe. A batch
   * refused for what one of its events holds rejects with AuditContentError: writing it again
   * cannot help, while any other rejection (a store that is down, slow or failing) may pass later.
   */
  write (batch: AuditBatch): Promise<void>
  close (): Promise<void>
}

/** the store refused the batch for its content (a value it cannot hold), not for its own state */
export class AuditContentError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'AuditContentError'
  }
}
