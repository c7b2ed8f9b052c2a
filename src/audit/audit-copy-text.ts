// An audit event's one encoding: a row of PostgreSQL's COPY text format (tab-separated, \N for
// null, backslash escapes, one line per event). Made once, when the event is recorded: the local
// log holds these lines, the block hash is taken over them, COPY … FROM STDIN receives them as
// they are, and the SQLite writer thread parses them back into values.
import type { AuditEvent, ChainedAuditEvent } from './audit-event.js'

/**
 * audit_events columns in row order. seq is last, so reading a row's seq back is one
 * lastIndexOf; prev_hash and hash are the per-event chain of older releases' rows (empty in a
 * row whose block carries the hash).
 */
export const AUDIT_COLUMNS = [
  'ts', 'id', 'request_id', 'key_id', 'customer', 'team', 'service', 'environment', 'partner',
  'credential_id', 'method', 'path', 'status', 'outcome', 'attempts', 'latency_ms',
  'upstream_latency_ms', 'cost', 'bytes_in', 'bytes_out', 'payment_tx', 'payment_amount',
  'prev_hash', 'hash', 'writer_id', 'seq',
] as const

/**
 * Turns events into COPY text rows. One per writer (or sink): it remembers the last second it
 * formatted, because consecutive events nearly always share it and toISOString is a good part
 * of the cost.
 */
export class CopyRowEncoder {
  #second: number
  #secondPrefix: string

  constructor () {
    this.#second = Number.NaN
    this.#secondPrefix = ''
  }

  /**
   * HOT PATH: a new event's row, newline included; its block carries the hash. Throws
   * RangeError when ts is not a valid time. One concatenation, no array or template, and the
   * escaping only when a value has something to escape.
   */
  eventRow (e: AuditEvent, writerId: string, seq: number): string {
    // prev_hash and hash empty: the block carries the hash (both columns are NOT NULL)
    return this.#fields(e) + '\t\t\t' + writerId + '\t' + seq + '\n'
  }

  /** an event of an older release, chained one by one: its own prev_hash and hash */
  chainedRow (e: ChainedAuditEvent): string {
    return this.#fields(e) + '\t' + nullable(e.prev_hash) + '\t' + nullable(e.hash) + '\t' + text(e.writer_id) + '\t' + e.seq + '\n'
  }

  #fields (e: AuditEvent): string {
    return this.#time(e.ts) + '\t' + text(e.id) + '\t' + text(e.request_id) + '\t' +
      nullable(e.key_id) + '\t' + nullable(e.customer) + '\t' + nullable(e.team) + '\t' +
      nullable(e.service) + '\t' + nullable(e.environment) + '\t' + text(e.partner) + '\t' +
      nullable(e.credential_id) + '\t' + text(e.method) + '\t' + text(e.path) + '\t' +
      e.status + '\t' + text(e.outcome) + '\t' + e.attempts + '\t' + e.latency_ms + '\t' +
      (e.upstream_latency_ms === null ? '\\N' : e.upstream_latency_ms) + '\t' + e.cost + '\t' +
      e.bytes_in + '\t' + e.bytes_out + '\t' + nullable(e.payment_tx) + '\t' + nullable(e.payment_amount)
  }

  /** ts as toISOString() writes it (which drops fractions of a ms): cached second, then ms, Z */
  #time (ts: number): string {
    const second = Math.floor(ts / 1000)
    if (second !== this.#second) {
      // throws for NaN and out-of-range times, as toISOString does; cut off 'mmmZ'
      const iso = new Date(second * 1000).toISOString()
      this.#secondPrefix = iso.slice(0, iso.length - 4)
      this.#second = second
    }
    const ms = Math.floor(ts) - second * 1000
    return this.#secondPrefix + (ms < 10 ? '00' : ms < 100 ? '0' : '') + ms + 'Z'
  }
}

/** the seq of a row (its last field); NaN when the row is damaged */
export function rowSeq (row: string): number {
  const end = row.endsWith('\n') ? row.length - 1 : row.length
  const field = row.slice(row.lastIndexOf('\t', end - 1) + 1, end)
  return /^\d{1,16}$/.test(field) ? Number(field) : Number.NaN
}

/** the ts of a row in epoch ms (its first field); NaN when the row is damaged */
export function rowTs (row: string): number {
  return Date.parse(row.slice(0, row.indexOf('\t')))
}

/** a row's values by column, unescaped; null where the row has \N. Throws on a damaged row. */
export function parseCopyRow (row: string): Array<string | null> {
  const end = row.endsWith('\n') ? row.length - 1 : row.length
  const fields = row.slice(0, end).split('\t')
  if (fields.length !== AUDIT_COLUMNS.length) throw new Error(`an audit row has ${fields.length} fields, not ${AUDIT_COLUMNS.length}`)
  const values = new Array<string | null>(fields.length)
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!
    values[i] = field === '\\N' ? null : field.indexOf('\\') === -1 ? field : field.replace(UNESCAPES, unescapeSequence)
  }
  return values
}

/** a row as a ChainedAuditEvent (numbers as numbers); what a quarantine line shows an operator */
export function eventOfRow (row: string): ChainedAuditEvent {
  return eventOfValues(parseCopyRow(row))
}

/** parseCopyRow's values as a ChainedAuditEvent */
export function eventOfValues (v: ReadonlyArray<string | null>): ChainedAuditEvent {
  const num = (i: number): number => Number(v[i])
  const numOrNull = (i: number): number | null => (v[i] === null ? null : Number(v[i]))
  return {
    ts: Date.parse(v[0]!), id: v[1]!, request_id: v[2]!, key_id: v[3]!, customer: v[4]!, team: v[5]!,
    service: v[6]!, environment: v[7]!, partner: v[8]!, credential_id: v[9]!, method: v[10]!, path: v[11]!,
    status: num(12), outcome: v[13]!, attempts: num(14), latency_ms: num(15), upstream_latency_ms: numOrNull(16),
    cost: num(17), bytes_in: num(18), bytes_out: num(19), payment_tx: v[20]!, payment_amount: v[21]!,
    // empty in a row whose block carries the hash
    prev_hash: v[22]!, hash: v[23]!, writer_id: v[24]!, seq: num(25),
  }
}

// Backslash starts an escape in COPY text; tab, newline and carriage return are delimiters.
// Most values contain none of them, so one test() spares them the replace().
const NEEDS_ESCAPE = /[\\\t\n\r]/
const ESCAPES = /[\\\t\n\r]/g
const UNESCAPES = /\\(.)/g

/** a text value as a COPY text field */
export function copyText (value: string): string {
  return text(value)
}

function text (value: string): string {
  return NEEDS_ESCAPE.test(value) ? value.replace(ESCAPES, escapeChar) : value
}

function nullable (value: string | null): string {
  return value === null ? '\\N' : text(value)
}

function escapeChar (c: string): string {
  switch (c) {
    case '\\': return '\\\\'
    case '\t': return '\\t'
    case '\n': return '\\n'
    default: return '\\r'
  }
}

function unescapeSequence (_match: string, c: string): string {
  switch (c) {
    case 't': return '\t'
    case 'n': return '\n'
    case 'r': return '\r'
    default: return c
  }
}
