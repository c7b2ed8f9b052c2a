// Checking the audit trail's tamper evidence, and the per-event chain of older releases.
//
// Writers of this release chain their events block by block (audit-block.ts): their rows have
// empty prev_hash and hash, and verify recomputes each block's hash from its stored rows.
// Writers of older releases chained every event, and their rows still verify that way:
//
//   writer w:  seq 1              seq 2              seq 3
//              prev = 0…0         prev = h1          prev = h2
//              h1 = H(0…0, e1) ─► h2 = H(h1, e2) ─► h3 = H(h2, e3)
//
// Neither hash has a key: it proves that the stored rows agree with each other, not who wrote
// them. Someone able to rewrite a whole chain suffix could recompute it; the append-only tables
// are what keep the application role from doing that.
import { hash } from 'node:crypto'
import { blockHash, GENESIS_BLOCK_HASH, type AuditBlock } from './audit-block.js'
import { CopyRowEncoder } from './audit-copy-text.js'
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
  return hash('sha256', prevHash + '\n' + canonicalEvent(event), 'hex')
}

export type ChainProblemKind =
  /** a hash does not recompute from the stored rows: a row was changed (in a block: one of its rows) */
  | 'altered'
  /** seq skips ahead: the rows in between are gone (seq is the first missing one) */
  | 'missing'
  /** prev_hash is not the previous row's (or block's) hash, or seq repeats or lies outside every block: a row or block was replaced or inserted */
  | 'broken_link'

export interface ChainProblem {
  writer_id: string
  seq: number
  /** the offending row; for 'missing', the first row after the gap ('' when none follows) */
  id: string
  kind: ChainProblemKind
  /** the block whose hash did not recompute, for 'altered' in a block-chained writer */
  block?: { first_seq: number; last_seq: number }
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
  /** block-chained writers: their blocks in seq order, the next one due, and its rows so far */
  blocks: readonly AuditBlock[] | null
  blockAt: number
  blockRows: string
  blockFirstId: string
  /** the current block lost a row (a gap, a row that is not one of its own): its hash is not checked */
  blockBroken: boolean
}

/**
 * Checks every writer's chain: per block for writers of this release (their `blocks`), per event
 * for older ones. Rows of different writers may interleave, but each writer's rows must come in
 * seq order (ORDER BY writer_id, seq does it). Memory grows with the number of writers and
 * blocks, not of rows. Plain arrays are accepted too, for callers that already hold the rows.
 */
export async function verifyChains (
  rows: AsyncIterable<ChainedAuditEvent> | Iterable<ChainedAuditEvent>,
  blocks: Iterable<AuditBlock> = [],
): Promise<VerifyResult> {
  const blocksOf = new Map<string, AuditBlock[]>()
  for (const block of blocks) {
    let list = blocksOf.get(block.writer_id)
    if (list === undefined) blocksOf.set(block.writer_id, list = [])
    list.push(block)
  }
  for (const list of blocksOf.values()) list.sort((a, b) => a.first_seq - b.first_seq)
  const encoder = new CopyRowEncoder()
  const chains = new Map<string, ChainState>()
  const problems: ChainProblem[] = []
  let events = 0
  for await (const row of rows) {
    events++
    let chain = chains.get(row.writer_id)
    if (chain === undefined) {
      chain = {
        summary: { writer_id: row.writer_id, events: 0, last_seq: 0, problem: null },
        lastHash: row.hash === '' ? GENESIS_BLOCK_HASH : GENESIS_HASH,
        blocks: row.hash === '' ? blocksOf.get(row.writer_id) ?? [] : null,
        blockAt: 0,
        blockRows: '',
        blockFirstId: '',
        blockBroken: false,
      }
      chains.set(row.writer_id, chain)
    }
    const summary = chain.summary
    summary.events++
    if (chain.blocks !== null) {
      // block by block every problem is found, not only the first: a block that lost a row (a
      // quarantined event, say) says nothing of the blocks after it, which chain from its hash
      const repeated = row.seq <= summary.last_seq
      const problem = checkBlockRow(chain, row, encoder)
      if (problem !== null) {
        summary.problem ??= problem
        problems.push(problem)
      }
      if (!repeated) summary.last_seq = row.seq
      continue
    }
    if (summary.problem === null) {
      const problem = checkLink(chain, row)
      if (problem !== null) {
        summary.problem = problem
        problems.push(problem)
      }
    }
    summary.last_seq = row.seq
    chain.lastHash = row.hash
  }
  // blocks whose rows are all gone: a writer's whole trail, or its tail
  for (const [writer, list] of blocksOf) {
    const chain = chains.get(writer)
    if (chain === undefined) {
      const summary: WriterSummary = { writer_id: writer, events: 0, last_seq: 0, problem: null }
      summary.problem = { writer_id: writer, seq: list[0]!.first_seq, id: '', kind: 'missing' }
      problems.push(summary.problem)
      chains.set(writer, { summary, lastHash: '', blocks: list, blockAt: 0, blockRows: '', blockFirstId: '', blockBroken: false })
      continue
    }
    if (chain.blocks !== null && chain.blockAt < chain.blocks.length) {
      const problem: ChainProblem = { writer_id: writer, seq: chain.summary.last_seq + 1, id: '', kind: 'missing' }
      chain.summary.problem ??= problem
      problems.push(problem)
    }
  }
  const writers = [...chains.values()].map((chain) => chain.summary)
  return { ok: problems.length === 0, writers, events, problems }
}

function checkLink (chain: ChainState, row: ChainedAuditEvent): ChainProblem | null {
  const expectedSeq = chain.summary.last_seq + 1
  const problem = (kind: ChainProblemKind): ChainProblem =>
    ({ writer_id: row.writer_id, seq: kind === 'missing' ? expectedSeq : row.seq, id: row.id, kind })
  if (row.seq > expectedSeq) return problem('missing')
  if (row.seq < expectedSeq) return problem('broken_link')
  // content first: a changed row is named as altered even when the change also touched prev_hash
  if (chainHash(row.prev_hash, row) !== row.hash) return problem('altered')
  if (row.prev_hash !== chain.lastHash) return problem('broken_link')
  return null
}

/**
 * A row of a block-chained writer: in order, in its block; a block's last row checks the block.
 * After a problem the check goes on: blocks gone whole are stepped over, a block that lost a row
 * is not hashed, and the chain continues from each stored block's own hash.
 */
function checkBlockRow (chain: ChainState, row: ChainedAuditEvent, encoder: CopyRowEncoder): ChainProblem | null {
  const blocks = chain.blocks!
  const expectedSeq = chain.summary.last_seq + 1
  const problem = (kind: ChainProblemKind, seq = row.seq): ChainProblem => ({ writer_id: row.writer_id, seq, id: row.id, kind })
  // a repeated seq, or a row with a per-event hash among block rows: slipped in or replaced
  if (row.seq < expectedSeq) return problem('broken_link')
  let found: ChainProblem | null = null
  if (row.seq > expectedSeq) {
    found = problem('missing', expectedSeq)
    // blocks whose rows all fall in the gap: nothing to hash; the chain goes on from them
    while (blocks[chain.blockAt] !== undefined && blocks[chain.blockAt]!.last_seq < row.seq) {
      chain.lastHash = blocks[chain.blockAt]!.hash
      chain.blockAt++
    }
    const current = blocks[chain.blockAt]
    chain.blockBroken = current !== undefined && current.first_seq < row.seq
  }
  const block = blocks[chain.blockAt]
  if (block === undefined || row.seq < block.first_seq) return found ?? problem('broken_link')
  if (row.seq === block.first_seq) {
    chain.blockRows = ''
    chain.blockFirstId = row.id
  }
  if (row.hash !== '' || row.prev_hash !== '') {
    chain.blockBroken = true
    found ??= problem('broken_link')
  } else {
    chain.blockRows += encoder.eventRow(row, row.writer_id, row.seq)
  }
  if (row.seq < block.last_seq) return found
  chain.blockAt++
  const broken = chain.blockBroken
  chain.blockBroken = false
  const linked = block.prev_hash === chain.lastHash
  chain.lastHash = block.hash
  if (broken || found !== null) return found
  // content first, as per event: a changed row is named as altered (by its block) even when
  // the block's link changed too
  if (blockHash(block.prev_hash, chain.blockRows) !== block.hash) {
    return { writer_id: row.writer_id, seq: block.first_seq, id: chain.blockFirstId, kind: 'altered', block: { first_seq: block.first_seq, last_seq: block.last_seq } }
  }
  if (!linked) return { writer_id: row.writer_id, seq: block.first_seq, id: chain.blockFirstId, kind: 'broken_link' }
  return null
}
