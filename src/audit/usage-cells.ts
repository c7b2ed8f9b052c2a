// Usage rollup cells: what a batch of events adds to the hourly usage table, one cell per
// (hour, key, customer, partner, outcome) with the sums GET /admin/usage reports. A worker adds
// each event as it records it (a short scan of its key's cells and a few additions), so a batch
// shipped from memory brings its cells along; a batch read back from a log counts its rows again
// (batch-usage-cells.ts).
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

/** the hourly table's columns */
export const USAGE_CELL_COLUMNS = ['hour', 'key_id', 'customer', 'partner', 'outcome', 'requests', 'retried', 'server_errors', 'cost', 'bytes_in', 'bytes_out', 'paid', 'paid_amount'] as const

const HOUR_MS = 3_600_000
/**
 * A key's cells are scanned in a short list (one per hour, partner and outcome it saw in this
 * set: nearly always one or two), so recording an event builds no name and allocates nothing
 * once its cell exists. A key with more (a client sending one key to many partner names) puts
 * the rest in a map by a composite name, so no list grows long.
 */
const LIST_MAX = 8

export class UsageCells {
  /** key_id ('' for none) → the first LIST_MAX of its cells */
  readonly #byKey: Map<string, UsageCell[]>
  /** the other cells, by their COPY-escaped fields joined by tabs (distinct cells cannot share one) */
  readonly #spread: Map<string, UsageCell>
  #size: number

  constructor () {
    this.#byKey = new Map()
    this.#spread = new Map()
    this.#size = 0
  }

  get size (): number {
    return this.#size
  }

  /** HOT PATH: one call per recorded event */
  add (e: AuditEvent): void {
    const cell = this.#cell(Math.floor(e.ts / HOUR_MS) * HOUR_MS, e.key_id ?? '', e.customer ?? '', e.partner, e.outcome)
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
    for (const cells of other.#byKey.values()) for (let i = 0; i < cells.length; i++) this.#add(cells[i]!)
    for (const o of other.#spread.values()) this.#add(o)
  }

  /** every cell, in no particular order */
  values (): UsageCell[] {
    const out: UsageCell[] = []
    for (const cells of this.#byKey.values()) for (let i = 0; i < cells.length; i++) out.push(cells[i]!)
    for (const cell of this.#spread.values()) out.push(cell)
    return out
  }

  /**
   * The cells as a JSON array of objects with USAGE_CELL_COLUMNS' names (the hour as ISO text,
   * paid_amount as a decimal string): one query parameter for PostgreSQL's json_to_recordset.
   */
  json (): string {
    const out: Array<Record<(typeof USAGE_CELL_COLUMNS)[number], string | number>> = []
    // the cells of a batch nearly always share their hour: its text is made once
    let hour = Number.NaN
    let hourText = ''
    for (const c of this.values()) {
      if (c.hour !== hour) {
        hour = c.hour
        hourText = new Date(hour).toISOString()
      }
      out.push({
        hour: hourText, key_id: c.key_id, customer: c.customer, partner: c.partner, outcome: c.outcome,
        requests: c.requests, retried: c.retried, server_errors: c.server_errors, cost: c.cost,
        bytes_in: c.bytes_in, bytes_out: c.bytes_out, paid: c.paid, paid_amount: c.paid_amount.toString(),
      })
    }
    return JSON.stringify(out)
  }

  /** adds `o`'s sums to the cell of its fields */
  #add (o: UsageCell): void {
    const cell = this.#cell(o.hour, o.key_id, o.customer, o.partner, o.outcome)
    cell.requests += o.requests
    cell.retried += o.retried
    cell.server_errors += o.server_errors
    cell.cost += o.cost
    cell.bytes_in += o.bytes_in
    cell.bytes_out += o.bytes_out
    cell.paid += o.paid
    cell.paid_amount += o.paid_amount
  }

  /** HOT PATH: the cell of these fields, made empty if there is none yet */
  #cell (hour: number, keyId: string, customer: string, partner: string, outcome: string): UsageCell {
    let cells = this.#byKey.get(keyId)
    if (cells === undefined) {
      cells = []
      this.#byKey.set(keyId, cells)
    }
    for (let i = 0; i < cells.length; i++) {
      const c = cells[i]!
      if (c.hour === hour && c.partner === partner && c.outcome === outcome && c.customer === customer) return c
    }
    if (cells.length < LIST_MAX) {
      const cell = emptyCell(hour, keyId, customer, partner, outcome)
      cells.push(cell)
      this.#size++
      return cell
    }
    const name = String(hour) + '\t' + copyText(keyId) + '\t' + copyText(customer) + '\t' + copyText(partner) + '\t' + copyText(outcome)
    let cell = this.#spread.get(name)
    if (cell === undefined) {
      cell = emptyCell(hour, keyId, customer, partner, outcome)
      this.#spread.set(name, cell)
      this.#size++
    }
    return cell
  }
}

function emptyCell (hour: number, keyId: string, customer: string, partner: string, outcome: string): UsageCell {
  return { hour, key_id: keyId, customer, partner, outcome, requests: 0, retried: 0, server_errors: 0, cost: 0, bytes_in: 0, bytes_out: 0, paid: 0, paid_amount: 0n }
}
