// The change log's tamper evidence: one hash chain over every change in seq order.
//
//   seq 1              seq 2              seq 3
//   prev = 0…0         prev = h1          prev = h2
//   h1 = H(0…0, c1) ─► h2 = H(h1, c2) ─► h3 = H(h2, c3)
//
// Like the audit trail's, the hash has no key: it proves the stored rows agree with each other.
// The append-only table keeps the application role from rewriting them; verify finds a row
// changed, removed or slipped in by anyone else.
import { hash } from 'node:crypto'
import { canonicalJson, type AdminChange } from './admin-change.js'

export const GENESIS_CHANGE_HASH = '0'.repeat(64)

/** SHA-256 hex of prev_hash, a newline, and the change's fields in a fixed order (ts as epoch ms) */
export function changeHash (prevHash: string, c: Omit<AdminChange, 'hash' | 'prev_hash'>): string {
  return hash('sha256', prevHash + '\n' + JSON.stringify([
    c.seq, c.id, Date.parse(c.ts), c.request_id, c.token_name, c.action, c.resource_type, c.resource_id, canonicalJson(c.changes),
  ]), 'hex')
}

export interface ChangeChainProblem {
  seq: number
  id: string
  kind: 'altered' | 'missing' | 'broken_link'
}

export interface ChangeChainResult {
  changes: number
  last_seq: number
  /** the first problem, null when the chain is intact */
  problem: ChangeChainProblem | null
}

/** walks the rows in seq order (ascending) to the end; reports the first problem */
export async function verifyChangeChain (rows: AsyncIterable<AdminChange> | Iterable<AdminChange>): Promise<ChangeChainResult> {
  let expectedSeq = 1
  let prev = GENESIS_CHANGE_HASH
  let count = 0
  let last = 0
  let problem: ChangeChainProblem | null = null
  for await (const row of rows) {
    count++
    last = row.seq
    if (problem !== null) continue
    if (row.seq > expectedSeq) problem = { seq: expectedSeq, id: row.id, kind: 'missing' }
    else if (row.seq < expectedSeq || row.prev_hash !== prev) problem = { seq: row.seq, id: row.id, kind: 'broken_link' }
    else if (changeHash(row.prev_hash, row) !== row.hash) problem = { seq: row.seq, id: row.id, kind: 'altered' }
    prev = row.hash
    expectedSeq++
  }
  return { changes: count, last_seq: last, problem }
}
