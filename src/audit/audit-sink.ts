// Where chained audit events end up: PostgreSQL (COPY) or SQLite (batched INSERT). Both run
// test/audit/audit-sink.contract.ts.
import type { ChainedAuditEvent } from './audit-event.js'

export interface AuditSink {
  /**
   * Stores the batch durably, or rejects and stores none of it. Idempotent: events already
   * stored (same id and ts) are skipped, so a replay after a partial failure is safe.
   */
  write (batch: readonly ChainedAuditEvent[]): Promise<void>
  close (): Promise<void>
}
