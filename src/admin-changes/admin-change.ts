// One admin mutation as the change log keeps it: who (the admin token's name), what (the
// resource and each field that changed, as the admin API shows it: secrets only as references),
// when, and the request id the caller got back.

export type ResourceType = 'partner' | 'credential' | 'policy' | 'binding' | 'key'
export type ChangeAction = 'create' | 'update' | 'delete' | 'revoke' | 'rotate'

/** a field's value before and after; `from` absent on create, `to` absent on delete */
export interface FieldChange {
  from?: unknown
  to?: unknown
}

export interface AdminChangeInput {
  request_id: string
  token_name: string
  action: ChangeAction
  resource_type: ResourceType
  resource_id: string
  changes: Record<string, FieldChange>
}

export interface AdminChange extends AdminChangeInput {
  /** 1, 2, 3…: the log's order, one chain for the whole deployment */
  seq: number
  id: string
  /** RFC 3339 UTC, milliseconds */
  ts: string
  prev_hash: string
  hash: string
}

export interface ChangeFilter {
  resource_type?: ResourceType
  resource_id?: string
  token_name?: string
  action?: ChangeAction
  /** ts at or after, before (epoch ms) */
  since?: number
  until?: number
  /** changes with seq below this (paging backwards from the newest) */
  before_seq?: number
  limit: number
}

/**
 * The fields of `after` that differ from `before` (each an admin API view, or null for a
 * resource that does not exist on that side); timestamps that move with every write are left out.
 */
export function fieldChanges (before: object | null, after: object | null): Record<string, FieldChange> {
  const from = (before ?? {}) as Record<string, unknown>
  const to = (after ?? {}) as Record<string, unknown>
  const changes: Record<string, FieldChange> = {}
  for (const field of new Set([...Object.keys(from), ...Object.keys(to)])) {
    if (field === 'updated_at' || (field === 'created_at' && before !== null && after !== null)) continue
    const had = before !== null && field in from
    const has = after !== null && field in to
    if (had && has && sameJson(from[field], to[field])) continue
    const change: FieldChange = {}
    if (had) change.from = from[field]
    if (has) change.to = to[field]
    changes[field] = change
  }
  return changes
}

function sameJson (a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b)
}

/** JSON with every object's keys sorted: the same value always gives the same text */
export function canonicalJson (value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    // no prototype: a member named __proto__ is a member like any other, not the object's prototype
    const sorted: Record<string, unknown> = Object.create(null)
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k]
    return sorted
  }) ?? 'null'
}
