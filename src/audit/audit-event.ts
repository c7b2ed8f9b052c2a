// One audit event per request that reached the proxy route, forwarded or refused (docs/operations.md, "Audit events").

export interface AuditEvent {
  /** uuid; replays deduplicate on it */
  id: string
  /** epoch ms when the request arrived */
  ts: number
  request_id: string
  key_id: string | null
  customer: string | null
  team: string | null
  service: string | null
  environment: string | null
  partner: string
  credential_id: string | null
  method: string
  /** the path after /proxy/{partner}, no query string */
  path: string
  /** the status the client got; 499 when the client left before an answer */
  status: number
  /** 'forwarded' or the error code of the refusal */
  outcome: string
  /** upstream attempts (0 when refused before forwarding) */
  attempts: number
  latency_ms: number
  upstream_latency_ms: number | null
  /** budget units charged (0 when refunded or refused) */
  cost: number
  bytes_in: number
  bytes_out: number
  /** the x402 settlement's transaction id */
  payment_tx: string | null
  /**
   * what the request was priced at in x402 atomic units: a canonical decimal string (digits,
   * no leading zeros, at most 78 — uint256), since it can exceed 2^53. Usage counts it only
   * where payment_tx shows the payment was settled. Build it with auditPaymentAmount.
   */
  payment_amount: string | null
}

/**
 * An event after the pipeline has given it its place in its writer's hash chain:
 * hash = SHA-256(prev_hash ‖ canonical event), seq counting from 1 per writer.
 */
export interface ChainedAuditEvent extends AuditEvent {
  writer_id: string
  seq: number
  prev_hash: string
  hash: string
}

// numeric(78,0) in PostgreSQL: anything else would be rounded ("1.5") or refused ("0x10") there
// — a refused row fails its whole batch, again on every replay — and a rounded or re-formatted
// one ("007") would no longer hash as it was chained
export const PAYMENT_AMOUNT = /^(?:0|[1-9][0-9]{0,77})$/

/**
 * The payment_amount an event may carry: `amount` when it is a canonical decimal string, else
 * null. The amounts RelayKey prices with are validated that way already (payment-settings.ts),
 * so null here only stops a malformed value from ever reaching the audit trail's stores.
 */
export function auditPaymentAmount (amount: string | null): string | null {
  return amount === null || isPaymentAmount(amount) ? amount : null
}

/** true when `amount` is a canonical decimal string of atomic units (what numeric(78,0) stores as is) */
export function isPaymentAmount (amount: string): boolean {
  return PAYMENT_AMOUNT.test(amount)
}

/** a request whose answer waits until its audit event is in the local log */
export interface AuditWaiter {
  auditLogged (): void
}

/**
 * What the data plane calls for every request; never blocks, never throws. `waiter` hears
 * once the event is in the local log (later in this event-loop turn); the request's answer
 * ends then.
 */
export interface AuditRecorder {
  record (event: AuditEvent, waiter?: AuditWaiter | null): void
}
