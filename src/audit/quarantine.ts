// Audit events the store refused for their content, set aside so that the events after them go
// on: one NDJSON file per writer under RELAYKEY_DATA_DIR/audit-quarantine, each line the whole
// event and the store's reason. Nothing else ever writes there; an operator reads, fixes and
// re-imports (docs/operations.md). Rare by construction: client text is bounded before it
// becomes an event, so this catches what no check foresaw rather than what clients send.
import { appendFileSync, closeSync, fdatasyncSync, mkdirSync, openSync } from 'node:fs'
import { join } from 'node:path'
import type { ChainedAuditEvent } from './audit-event.js'

export class Quarantine {
  readonly #dir: string
  readonly #file: string
  #count: number

  constructor (dir: string, writerId: string) {
    this.#dir = dir
    this.#file = join(dir, `audit-quarantine.${writerId}.ndjson`)
    this.#count = 0
  }

  /** events set aside by this writer */
  get count (): number { return this.#count }

  get file (): string { return this.#file }

  /** appends the event and the reason, durably; throws when the file cannot be written */
  add (event: ChainedAuditEvent, reason: string): void {
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 })
    const line = JSON.stringify({ quarantined_at: new Date().toISOString(), reason, event }) + '\n'
    const fd = openSync(this.#file, 'a', 0o600)
    try {
      appendFileSync(fd, line)
      fdatasyncSync(fd)
    } finally {
      closeSync(fd)
    }
    this.#count++
  }
}
