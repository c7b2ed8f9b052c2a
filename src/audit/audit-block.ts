// The tamper evidence of the audit trail: each writer chains its events block by block. A block
// is the events of one write to the writer's log (one event-loop turn's); its hash covers their
// rows exactly as stored (audit-copy-text.ts), chained to the writer's previous block:
//
//   writer w:  block seq 1–3             block seq 4–4             block seq 5–9
//              prev = 0…0                prev = h1                 prev = h2
//              h1 = H(0…0, rows 1–3) ─►  h2 = H(h1, row 4) ─────►  h3 = H(h2, rows 5–9)
//
// One SHA-256 per block instead of one per event, over bytes the log writes anyway. A row that
// was altered, removed or slipped in afterwards shows when `relaykey audit verify` recomputes
// the blocks from the stored rows. Like the per-event chain of older releases, the hash has no
// key: it proves that the stored rows agree with each other, not who wrote them.
import { hash } from 'node:crypto'

export interface AuditBlock {
  writer_id: string
  first_seq: number
  last_seq: number
  prev_hash: string
  hash: string
}

/** prev_hash of a writer's first block */
export const GENESIS_BLOCK_HASH = '0'.repeat(64)

/**
 * SHA-256 hex of the previous block's hash, a newline, and the block's rows (text or their
 * UTF-8). One-shot crypto.hash: a createHash object costs more than hashing a small block.
 */
export function blockHash (prevHash: string, rows: string | Uint8Array): string {
  if (typeof rows === 'string') return hash('sha256', prevHash + '\n' + rows, 'hex')
  return hash('sha256', Buffer.concat([Buffer.from(prevHash + '\n'), rows]), 'hex')
}

// In the log a block follows its rows as one line of its own; '#' never starts a row (a time).
const BLOCK_LINE_PREFIX = '#block\t'

export function blockLine (b: AuditBlock): string {
  return BLOCK_LINE_PREFIX + b.first_seq + '\t' + b.last_seq + '\t' + b.prev_hash + '\t' + b.hash + '\n'
}

export function isBlockLine (line: string): boolean {
  return line.startsWith(BLOCK_LINE_PREFIX)
}

/** the block of a log line (its writer named by the segment); null when the line is damaged */
export function parseBlockLine (line: string, writerId: string): AuditBlock | null {
  const parts = line.slice(BLOCK_LINE_PREFIX.length).replace(/\n$/, '').split('\t')
  if (parts.length !== 4) return null
  const [first, last, prev, h] = parts as [string, string, string, string]
  if (!/^\d{1,16}$/.test(first) || !/^\d{1,16}$/.test(last) || !HEX64.test(prev) || !HEX64.test(h)) return null
  return { writer_id: writerId, first_seq: Number(first), last_seq: Number(last), prev_hash: prev, hash: h }
}

const HEX64 = /^[0-9a-f]{64}$/
