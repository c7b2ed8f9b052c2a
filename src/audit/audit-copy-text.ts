// Audit events as rows of PostgreSQL's COPY text format: tab-separated, \N for null, backslash
// escapes, one line per event. Written by the PostgreSQL sink, read by COPY … FROM STDIN.
import type { ChainedAuditEvent } from './audit-event.js'

/** audit_events columns in the order CopyRowEncoder.row writes them */
export const AUDIT_COLUMNS = [
  'ts', 'id', 'request_id', 'key_id', 'customer', 'team', 'service', 'environment', 'partner',
  'credential_id', 'method', 'path', 'status', 'outcome', 'attempts', 'latency_ms',
  'upstream_latency_ms', 'cost', 'bytes_in', 'bytes_out', 'payment_tx', 'payment_amount',
  'writer_id', 'seq', 'prev_hash', 'hash',
] as const

/**
 * Turns events into COPY text lines. One per sink: it remembers the last second it formatted,
 * because consecutive events nearly always share it and toISOString is a good part of the cost.
 */
export class CopyRowEncoder {
  #second: number
  #secondPrefix: string

  constructor () {
    this.#second = Number.NaN
    this.#secondPrefix = ''
  }

  /** One event as a COPY text line. Throws RangeError when ts is not a valid time. */
  // HOT PATH: runs for every event the sink stores; one concatenation, no array or template,
  // and the escaping only when a value has something to escape.
  row (e: ChainedAuditEvent): string {
    return this.#time(e.ts) + '\t' + text(e.id) + '\t' + text(e.request_id) + '\t' +
      nullable(e.key_id) + '\t' + nullable(e.customer) + '\t' + nullable(e.team) + '\t' +
      nullable(e.service) + '\t' + nullable(e.environment) + '\t' + text(e.partner) + '\t' +
      nullable(e.credential_id) + '\t' + text(e.method) + '\t' + text(e.path) + '\t' +
      e.status + '\t' + text(e.outcome) + '\t' + e.attempts + '\t' + e.latency_ms + '\t' +
      (e.upstream_latency_ms === null ? '\\N' : e.upstream_latency_ms) + '\t' + e.cost + '\t' +
      e.bytes_in + '\t' + e.bytes_out + '\t' + nullable(e.payment_tx) + '\t' + nullable(e.payment_amount) + '\t' +
      text(e.writer_id) + '\t' + e.seq + '\t' + text(e.prev_hash) + '\t' + text(e.hash) + '\n'
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

// Backslash starts an escape in COPY text; tab, newline and carriage return are delimiters.
// Most values contain none of them, so one test() spares them the replace().
const NEEDS_ESCAPE = /[\\\t\n\r]/
const ESCAPES = /[\\\t\n\r]/g

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
