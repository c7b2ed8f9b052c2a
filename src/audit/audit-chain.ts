// The tamper evidence of the audit trail: each writer chains its events by hash, so a row that
// was altered, removed or slipped in afterwards shows when the chain is recomputed.
//
//   writer w:  seq 1              seq 2              seq 3
//              prev = 0…0         prev = h1          prev = h2
//              h1 = H(0…0, e1) ─► h2 = H(h1, e2) ─► h3 = H(h2, e3)
//
// The hash has no key: it proves that the stored rows agree with each other, not who wrote them.
// Someone able to rewrite a whole chain suffix could recompute it; the append-only table is what
// keeps the application role from doing that.
import { hash } from 'node:crypto'
import type { AuditEvent, ChainedAuditEvent } from './audit-event.js'

/** prev_hash of a writer's first event */
export const GENESIS_HASH = '0'.repeat(64)

/**
 * The bytes that get hashed for an event: a JSON array of its AuditEvent fields in this fixed
 * order (ts as epoch ms). An array, not an object: the order is fixed by position, and
 * serialising no keys costs a fraction of an object's time — this runs once per request. The
 * order is part of the stored data's meaning: never reorder, only append.
 *
 * Fields appended after the first release (payment_amount) are left out while they are null, so
 * every event that does not use them — every row stored before they existed included, which
 * reads back with NULL — hashes exactly as it did then, and verify needs no version to tell old
 * rows from new. Setting one makes the array longer, so a stored value changed, removed or
 * slipped in still shows as altered. A later field follows the same rule: trailing nulls are
 * dropped, a null before a non-null one is kept as null.
 */
export function canonicalEvent (e: AuditEvent): string {
  // HOT PATH: two literal arrays rather than building one and pushing; nearly every event
  // takes the first
  if (e.payment_amount === null) {
    return JSON.stringify([
      e.id, e.ts, e.request_id, e.key_id, e.customer, e.team, e.service, e.environment, e.partner,
      e.credential_id, e.method, e.path, e.status, e.outcome, e.attempts, e.latency_ms,
      e.upstream_latency_ms, e.cost, e.bytes_in, e.bytes_out, e.payment_tx,
    ])
  }
  return JSON.stringify([
    e.id, e.ts, e.request_id, e.key_id, e.customer, e.team, e.service, e.environment, e.partner,
    e.credential_id, e.method, e.path, e.status, e.outcome, e.attempts, e.latency_ms,
    e.upstream_latency_ms, e.cost, e.bytes_in, e.bytes_out, e.payment_tx, e.payment_amount,
  ])
}

/**
 * SHA-256 hex of prev_hash, a newline, and the canonical event. HOT PATH: the one-shot
 * crypto.hash (Node ≥ 20.12) costs about a third of a createHash object per event.
 */
export function chainHash (prevHash: string, event: AuditEvent): string {
  return hashCanonical(prevHash, canonicalEvent(event))
}

/** chainHash for an event already in its canonical form (the audit log line holds it) */
export function hashCanonical (prevHash: string, canonical: string): string {
  return hash('sha256', prevHash + '\n' + canonical, 'hex')
}

export type ChainProblemKind =
  /** the row's hash does not recompute from its own content: the row was changed */
  | 'altered'
  /** seq skips ahead: the rows in between are gone (seq is the first missing one) */
  | 'missing'
  /** prev_hash is not the previous row's hash, or seq repeats: a row was replaced or inserted */
  | 'broken_link'

export interface ChainProblem {
  writer_id: string
  seq: number
  /** the offending row; for 'missing', the first row after the gap */
  id: string
  kind: ChainProblemKind
}

export interface WriterSummary {
  writer_id: string
  events: number
  last_seq: number
  /** the first problem in this writer's chain; later rows are counted, not checked */
  problem: ChainProblem | null
}

export interface VerifyResult {
  ok: boolean
  /** one entry per writer, in the order their first rows arrived */
  writers: WriterSummary[]
  events: number
  /** the first problem of each broken writer */
  problems: ChainProblem[]
}

interface ChainState {
  summary: WriterSummary
  lastHash: string
}

/**
 * Checks every writer's chain. Rows of different writers may interleave, but each writer's rows
 * must come in seq order (ORDER BY writer_id, seq does it). Memory grows with the number of
 * writers, not of rows. Plain arrays are accepted too, for callers that already hold the rows.
 */
export async function verifyChains (rows: AsyncIterable<ChainedAuditEvent> | Iterable<ChainedAuditEvent>): Promise<VerifyResult> {
  const chains = new Map<string, ChainState>()
  const problems: ChainProblem[] = []
  let events = 0
  for await (const row of rows) {
    events++
    let chain = chains.get(row.writer_id)
    if (chain === undefined) {
      chain = { summary: { writer_id: row.writer_id, events: 0, last_seq: 0, problem: null }, lastHash: GENESIS_HASH }
      chains.set(row.writer_id, chain)
    }
    const summary = chain.summary
    summary.events++
    if (summary.problem === null) {
      const kind = checkLink(chain, row)
      if (kind !== null) {
        summary.problem = { writer_id: row.writer_id, seq: kind === 'missing' ? summary.last_seq + 1 : row.seq, id: row.id, kind }
        problems.push(summary.problem)
      }
    }
    summary.last_seq = row.seq
    chain.lastHash = row.hash
  }
  const writers = [...chains.values()].map((chain) => chain.summary)
  return { ok: problems.length === 0, writers, events, problems }
}

function checkLink (chain: ChainState, row: ChainedAuditEvent): ChainProblemKind | null {
  const expectedSeq = chain.summary.last_seq + 1
  if (row.seq > expectedSeq) return 'missing'
  if (row.seq < expectedSeq) return 'broken_link'
  // content first: a changed row is named as altered even when the change also touched prev_hash
  if (chainHash(row.prev_hash, row) !== row.hash) return 'altered'
  if (row.prev_hash !== chain.lastHash) return 'broken_link'
  return null
}
