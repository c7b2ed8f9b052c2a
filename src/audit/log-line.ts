// One audit event as a line of the local audit log: its place in the writer's hash chain and the
// canonical array the hash was taken over, so writing the line costs a concatenation, not a
// second serialisation of the event:
//
//   {"s":<seq>,"p":"<prev_hash>","h":"<hash>","e":[<canonical event, audit-chain.ts>]}\n
//
// The writer is named by the segment's file name. Older releases' spill files hold whole
// ChainedAuditEvent objects, one per line; parseLogLine reads both.
import type { AuditEvent, ChainedAuditEvent } from './audit-event.js'

/** HOT PATH: once per event */
export function logLine (seq: number, prevHash: string, hash: string, canonical: string): string {
  return '{"s":' + seq + ',"p":"' + prevHash + '","h":"' + hash + '","e":' + canonical + '}\n'
}

/** the event of a log line (either format); null when the line is damaged */
export function parseLogLine (line: string, writerId: string): ChainedAuditEvent | null {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  const entry = value as { s?: unknown; p?: unknown; h?: unknown; e?: unknown }
  if (Array.isArray(entry.e)) {
    if (typeof entry.s !== 'number' || typeof entry.p !== 'string' || typeof entry.h !== 'string') return null
    const event = fromCanonical(entry.e)
    return event === null ? null : { ...event, writer_id: writerId, seq: entry.s, prev_hash: entry.p, hash: entry.h }
  }
  return legacySpillEvent(value as Partial<ChainedAuditEvent>)
}

/** the inverse of canonicalEvent (audit-chain.ts): fields by position, payment_amount optional */
function fromCanonical (a: unknown[]): AuditEvent | null {
  if (a.length !== 21 && a.length !== 22) return null
  if (typeof a[0] !== 'string' || typeof a[1] !== 'number' || typeof a[12] !== 'number') return null
  return {
    id: a[0],
    ts: a[1],
    request_id: a[2] as string,
    key_id: a[3] as string | null,
    customer: a[4] as string | null,
    team: a[5] as string | null,
    service: a[6] as string | null,
    environment: a[7] as string | null,
    partner: a[8] as string,
    credential_id: a[9] as string | null,
    method: a[10] as string,
    path: a[11] as string,
    status: a[12],
    outcome: a[13] as string,
    attempts: a[14] as number,
    latency_ms: a[15] as number,
    upstream_latency_ms: a[16] as number | null,
    cost: a[17] as number,
    bytes_in: a[18] as number,
    bytes_out: a[19] as number,
    payment_tx: a[20] as string | null,
    payment_amount: a.length === 22 ? a[21] as string | null : null,
  }
}

function legacySpillEvent (event: Partial<ChainedAuditEvent>): ChainedAuditEvent | null {
  if (typeof event.id !== 'string' || typeof event.writer_id !== 'string' || typeof event.seq !== 'number' ||
    typeof event.hash !== 'string') return null
  // files spilled before payment_amount existed lack it; those events were chained without it,
  // which is what null means to the chain (audit-chain.ts)
  if (event.payment_amount === undefined) event.payment_amount = null
  return event as ChainedAuditEvent
}
