// The read side of the audit trail: per-month usage numbers, from the hourly rollups the audit
// sinks add to in each batch's transaction (so they agree with the rows of audit_events), and
// the newest events themselves.
import type { ChainedAuditEvent } from './audit-event.js'

export interface UsageFilter {
  key_id: string | null
  customer: string | null
  partner: string | null
}

export interface UsageCounts {
  requests: number
  forwarded: number
  retried: number
  /** refusals RelayKey decided itself, by error code */
  blocked: Record<string, number>
  cost: number
  upstream_errors: number
  /** request and response body bytes, as counted at the proxy */
  bytes_in: number
  bytes_out: number
  paid: PaidUsage
}

/** x402-paid requests: those whose payment was settled (payment_tx set) */
export interface PaidUsage {
  requests: number
  /** the exact sum of their payment_amount in atomic units, as a decimal string; "0" when none */
  amount: string
}

/** one row per outcome, as both SQL dialects aggregate it */
export interface OutcomeRow {
  outcome: string
  n: number
  cost: number
  retried: number
  server_errors: number
  bytes_in: number
  bytes_out: number
  /** events with a payment_tx */
  paid: number
  /** sum of those events' payment_amount, a decimal string ("0" when none); exact in both dialects */
  paid_amount: string
}

/** a position in the newest-first order: events before `ts`, or at `ts` with a smaller id */
export interface AuditCursor {
  ts: Date
  /** null: every event at `ts` is excluded too (a plain time was given) */
  id: string | null
}

/** which events GET /admin/audit lists: every non-null field must match (AND) */
export interface AuditFilter extends UsageFilter {
  /** 'forwarded' or a refusal's error code, exactly */
  outcome: string | null
  /** inclusive */
  from: Date | null
  /** exclusive */
  to: Date | null
}

export interface AuditQuery {
  usage (filter: UsageFilter, from: Date, to: Date): Promise<UsageCounts>
  /** newest first (ts, then id, descending), strictly before the cursor when given */
  list (filter: AuditFilter, limit: number, before: AuditCursor | null): Promise<ChainedAuditEvent[]>
  close (): Promise<void>
}

/** outcomes that are the partner's (or the client's) doing, not a governance refusal */
const NOT_BLOCKED = new Set(['forwarded', 'upstream_error', 'upstream_timeout', 'client_closed'])

export function foldUsage (rows: readonly OutcomeRow[]): UsageCounts {
  const usage: UsageCounts = { requests: 0, forwarded: 0, retried: 0, blocked: {}, cost: 0, upstream_errors: 0, bytes_in: 0, bytes_out: 0, paid: { requests: 0, amount: '0' } }
  // atomic units pass 2^53: BigInt across the outcome rows, as the SQL did within each
  let paidAmount = 0n
  for (const row of rows) {
    usage.paid.requests += row.paid
    paidAmount += BigInt(row.paid_amount)
    usage.requests += row.n
    usage.cost += row.cost
    usage.retried += row.retried
    usage.bytes_in += row.bytes_in
    usage.bytes_out += row.bytes_out
    if (row.outcome === 'forwarded') {
      usage.forwarded += row.n
      usage.upstream_errors += row.server_errors
    } else if (row.outcome === 'upstream_error' || row.outcome === 'upstream_timeout') {
      usage.upstream_errors += row.n
    }
    if (!NOT_BLOCKED.has(row.outcome)) usage.blocked[row.outcome] = row.n
  }
  usage.paid.amount = paidAmount.toString()
  return usage
}
