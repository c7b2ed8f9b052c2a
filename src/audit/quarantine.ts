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
  /** ids set aside by this process: a batch read back after a failure brings them again */
  readonly #ids: Set<string>
  #count: number

  constructor (dir: string, writerId: string) {
    this.#dir = dir
    this.#file = join(dir, `audit-quarantine.${writerId}.ndjson`)
    this.#ids = new Set()
    this.#count = 0
  }

  /** events set aside by this writer */
  get count (): number { return this.#count }

  get file (): string { return this.#file }

  /**
   * Appends the event and the reason, durably; false when this process has set the event aside
   * already. Throws when the file cannot be written.
   */
  add (event: ChainedAuditEvent, reason: string): boolean {
    if (this.#ids.has(event.id)) return false
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 })
    const line = JSON.stringify({ quarantined_at: new Date().toISOString(), reason, event }) + '\n'
    const fd = openSync(this.#file, 'a', 0o600)
    try {
      appendFileSync(fd, line)
      fdatasyncSync(fd)
    } finally {
      closeSync(fd)
    }
    this.#ids.add(event.id)
    this.#count++
    return true
  }
}
