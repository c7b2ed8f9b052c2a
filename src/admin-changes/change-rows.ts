// A change log row as each store returns it, back to an AdminChange: PostgreSQL (timestamptz
// ts, jsonb changes) and SQLite (epoch ms ts, JSON text changes).
import type { AdminChange } from './admin-change.js'

type Row = Record<string, any>

export function postgresChangeRow (r: Row): AdminChange {
  return { ...fields(r), ts: new Date(r.ts as Date | string).toISOString(), changes: r.changes }
}

export function sqliteChangeRow (r: Row): AdminChange {
  return { ...fields(r), ts: new Date(Number(r.ts)).toISOString(), changes: JSON.parse(r.changes as string) }
}

function fields (r: Row): Omit<AdminChange, 'ts' | 'changes'> {
  return {
    seq: Number(r.seq),
    id: r.id,
    request_id: r.request_id,
    token_name: r.token_name,
    action: r.action,
    resource_type: r.resource_type,
    resource_id: r.resource_id,
    prev_hash: r.prev_hash,
    hash: r.hash,
  }
}
