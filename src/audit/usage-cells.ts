// Usage rollup cells: what a batch of events adds to the hourly usage table, one cell per
// (hour, key, customer, partner, outcome) with the sums GET /admin/usage reports. A worker adds
// each event as it records it (a string key and a few additions), so a batch shipped from memory
// brings its cells along; a batch read back from a log counts its rows again (batch-usage-cells.ts).
// The stores add the cells in the batch's own transaction, counting only events they stored.
import { copyText } from './audit-copy-text.js'
import { PAYMENT_AMOUNT, type AuditEvent } from './audit-event.js'

export interface UsageCell {
  /** the hour's start, epoch ms (UTC) */
  hour: number
  /** '' for an event without one, as the hourly tables hold it */
  key_id: string
  customer: string
  partner: string
  outcome: string
  requests: number
  /** attempts beyond the first */
  retried: number
  /** events whose status was 5xx */
  server_errors: number
  cost: number
  bytes_in: number
  bytes_out: number
  /** events with a settled payment (payment_tx set) */
  paid: number
  /** their payment_amount summed, exactly */
  paid_amount: bigint
}

/** the hourly table's columns, in the order cellRows writes them */
export const USAGE_CELL_COLUMNS = ['hour', 'key_id', 'customer', 'partner', 'outcome', 'requests', 'retried', 'server_errors', 'cost', 'bytes_in', 'bytes_out', 'paid', 'paid_amount'] as const

const HOUR_MS = 3_600_000

export class UsageCells {
  readonly #cells: Map<string, UsageCell>
  // consecutive events nearly always share the hour: its text is made once
  #hour: number
  #hourText: string

  constructor () {
    this.#cells = new Map()
    this.#hour = Number.NaN
    this.#hourText = ''
  }

  get size (): number {
    return this.#cells.size
  }

  /** HOT PATH: one call per recorded event */
  add (e: AuditEvent): void {
    const hour = Math.floor(e.ts / HOUR_MS) * HOUR_MS
    if (hour !== this.#hour) {
      this.#hour = hour
      this.#hourText = String(hour)
    }
    const keyId = e.key_id ?? ''
    const customer = e.customer ?? ''
    // COPY-escaped fields joined by tabs: distinct cells cannot share a key
    const key = this.#hourText + '\t' + copyText(keyId) + '\t' + copyText(customer) + '\t' + copyText(e.partner) + '\t' + copyText(e.outcome)
    let cell = this.#cells.get(key)
    if (cell === undefined) {
      cell = { hour, key_id: keyId, customer, partner: e.partner, outcome: e.outcome, requests: 0, retried: 0, server_errors: 0, cost: 0, bytes_in: 0, bytes_out: 0, paid: 0, paid_amount: 0n }
      this.#cells.set(key, cell)
    }
    cell.requests++
    if (e.attempts > 1) cell.retried += e.attempts - 1
    if (e.status >= 500) cell.server_errors++
    cell.cost += e.cost
    cell.bytes_in += e.bytes_in
    cell.bytes_out += e.bytes_out
    if (e.payment_tx !== null) {
      cell.paid++
      // a malformed amount never lands: the stores refuse its row, and the batch is split
      // until it is quarantined. Never a throw here, on the hot path
      if (e.payment_amount !== null && PAYMENT_AMOUNT.test(e.payment_amount)) cell.paid_amount += BigInt(e.payment_amount)
    }
  }

  /** adds another set's cells to these */
  merge (other: UsageCells): void {
    for (const [key, o] of other.#cells) {
      const cell = this.#cells.get(key)
      if (cell === undefined) {
        this.#cells.set(key, { ...o })
        continue
      }
      cell.requests += o.requests
      cell.retried += o.retried
      cell.server_errors += o.server_errors
      cell.cost += o.cost
      cell.bytes_in += o.bytes_in
      cell.bytes_out += o.bytes_out
      cell.paid += o.paid
      cell.paid_amount += o.paid_amount
    }
  }

  values (): IterableIterator<UsageCell> {
    return this.#cells.values()
  }

  /** the cells as COPY text rows, columns as USAGE_CELL_COLUMNS (the hour as ISO text) */
  copyRows (): Buffer {
    let text = ''
    for (const c of this.#cells.values()) {
      text += new Date(c.hour).toISOString() + '\t' + copyText(c.key_id) + '\t' + copyText(c.customer) + '\t' +
        copyText(c.partner) + '\t' + copyText(c.outcome) + '\t' + c.requests + '\t' + c.retried + '\t' + c.server_errors + '\t' +
        c.cost + '\t' + c.bytes_in + '\t' + c.bytes_out + '\t' + c.paid + '\t' + c.paid_amount + '\n'
    }
    return Buffer.from(text)
  }
}
