// One audit event per request that reached the proxy route, forwarded or refused (CONTRACT §6).

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
  payment_tx: string | null
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

/** What the data plane calls for every request; never blocks, never throws. */
export interface AuditRecorder {
  record (event: AuditEvent): void
}
