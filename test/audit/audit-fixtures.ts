// Audit events for tests: varied enough to exercise every column (nulls, unicode, the characters
// COPY text format escapes), chained per writer the way the pipeline chains them.
import { randomUUID } from 'node:crypto'
import type { AuditEvent, ChainedAuditEvent } from '../../src/audit/audit-event.js'
import { chainHash, GENESIS_HASH } from '../../src/audit/audit-chain.js'
import { batchOfRows, type AuditBatch } from '../../src/audit/audit-batch.js'
import type { AuditBlock } from '../../src/audit/audit-block.js'
import { CopyRowEncoder } from '../../src/audit/audit-copy-text.js'
import type { UsageCounts } from '../../src/audit/audit-query.js'
import { UsageCells } from '../../src/audit/usage-cells.js'

/** Paths that must come back byte for byte: unicode, and COPY's delimiters and escape. */
export const AWKWARD_PATHS = [
  '/résumé/日本語/😀',
  '/tab\there',
  '/line\nbreak\rreturn',
  '/back\\slash\\N',
  '\\N',
  '',
]

/** x402 atomic units as the stores must keep them: past 2^53 and 2^64, up to uint256's 78 digits */
export const PAYMENT_AMOUNTS = ['10000', '0', '18446744073709551616', '9007199254740993', '9'.repeat(78)]

export function auditEvent (i: number, ts: number): AuditEvent {
  const refused = i % 3 === 2
  return {
    id: randomUUID(),
    ts,
    request_id: `req-${i}`,
    key_id: refused ? null : `key_${i % 7}`,
    customer: refused ? null : `cust-${i % 4}`,
    team: i % 2 === 0 ? 'platform' : null,
    service: i % 4 === 0 ? 'billing' : null,
    environment: refused ? null : 'sandbox',
    partner: 'acme',
    credential_id: refused ? null : 'cred_1',
    method: i % 2 === 0 ? 'GET' : 'POST',
    path: i % 5 === 0 ? AWKWARD_PATHS[(i / 5) % AWKWARD_PATHS.length] : `/resources/${i}`,
    status: refused ? 429 : 200,
    outcome: refused ? 'rate_limited' : 'forwarded',
    attempts: refused ? 0 : 1 + (i % 3),
    latency_ms: i % 250,
    upstream_latency_ms: refused ? null : i % 200,
    cost: refused ? 0 : 150,
    // past 2^32: bigint columns must not wrap
    bytes_in: i * 17,
    bytes_out: i % 11 === 0 ? 5_000_000_000 + i : i * 1024,
    payment_tx: i % 6 === 0 ? `0x${i.toString(16).padStart(64, '0')}` : null,
    payment_amount: i % 6 === 0 ? PAYMENT_AMOUNTS[(i / 6) % PAYMENT_AMOUNTS.length] : null,
  }
}

/** Gives `events` seq numbers and hashes as one writer's chain, continuing after `prevHash`. */
export function chain (writerId: string, events: AuditEvent[], firstSeq = 1, prevHash = GENESIS_HASH): ChainedAuditEvent[] {
  let prev = prevHash
  return events.map((event, i) => {
    const hash = chainHash(prev, event)
    const chained = { ...event, writer_id: writerId, seq: firstSeq + i, prev_hash: prev, hash }
    prev = hash
    return chained
  })
}

/** `count` chained events of one writer, a millisecond apart, ending about now. */
export function chainedEvents (count: number, writerId: string = randomUUID(), end = Date.now()): ChainedAuditEvent[] {
  const events: AuditEvent[] = []
  for (let i = 0; i < count; i++) events.push(auditEvent(i, end - count + i))
  return chain(writerId, events)
}

/** The same database URL, logging in as another role (local trust auth: no password). */
export function asRole (url: string, role: string): string {
  const u = new URL(url)
  u.username = role
  u.password = ''
  return u.toString()
}

/** an ordinary forwarded event recorded now, told apart by request_id `req-<i>` and path `/v1/items/<i>` */
export function plainEvent (i: number): AuditEvent {
  return {
    id: randomUUID(), ts: Date.now(), request_id: `req-${i}`, key_id: 'key_1', customer: 'acme', team: null,
    service: null, environment: 'prod', partner: 'stripe', credential_id: null, method: 'GET',
    path: `/v1/items/${i}`, status: 200, outcome: 'forwarded', attempts: 1, latency_ms: 3,
    upstream_latency_ms: 2, cost: 1, bytes_in: 0, bytes_out: 120, payment_tx: null, payment_amount: null,
  }
}

/** events chained one by one, as older releases wrote them, as a batch a sink takes */
export function batchOfEvents (events: readonly ChainedAuditEvent[], blocks: AuditBlock[] = []): AuditBatch {
  const encoder = new CopyRowEncoder()
  return batchOfRows(events.map((e) => encoder.chainedRow(e)), blocks)
}

/** batchOfEvents as a worker ships it from memory: with the usage cells counted as it recorded them */
export function batchWithCells (events: readonly ChainedAuditEvent[]): AuditBatch {
  const cells = new UsageCells()
  for (const e of events) cells.add(e)
  return { ...batchOfEvents(events), cells }
}

/** the columns usage is counted from */
export type UsageColumns = Pick<AuditEvent, 'outcome' | 'status' | 'attempts' | 'cost' | 'bytes_in' | 'bytes_out' | 'payment_tx' | 'payment_amount'>

/** what GET /admin/usage reports for these events, counted here one by one (not by the code under test) */
export function usageCountedFrom (events: readonly UsageColumns[]): UsageCounts {
  const blocked: Record<string, number> = {}
  let paidAmount = 0n
  const usage: UsageCounts = { requests: 0, forwarded: 0, retried: 0, blocked, cost: 0, upstream_errors: 0, bytes_in: 0, bytes_out: 0, paid: { requests: 0, amount: '0' } }
  for (const e of events) {
    usage.requests++
    usage.retried += Math.max(0, e.attempts - 1)
    usage.cost += e.cost
    usage.bytes_in += e.bytes_in
    usage.bytes_out += e.bytes_out
    if (e.outcome === 'forwarded') {
      usage.forwarded++
      if (e.status >= 500) usage.upstream_errors++
    } else if (e.outcome === 'upstream_error' || e.outcome === 'upstream_timeout') {
      usage.upstream_errors++
    } else if (e.outcome !== 'client_closed') {
      blocked[e.outcome] = (blocked[e.outcome] ?? 0) + 1
    }
    if (e.payment_tx !== null) {
      usage.paid.requests++
      if (e.payment_amount !== null) paidAmount += BigInt(e.payment_amount)
    }
  }
  usage.paid.amount = paidAmount.toString()
  return usage
}
