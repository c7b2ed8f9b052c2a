// What the control plane tells the data plane after a change, so cached key contexts go stale
// within a second: on this node through cluster IPC, on other nodes through Redis pub/sub.

export type Invalidation =
  | { kind: 'key'; id: string }
  | { kind: 'policy'; id: string }
  /** `deleted`: the partner is gone, and so is the workers' reliability state for it */
  | { kind: 'partner'; id: string; deleted?: true }
  | { kind: 'all' }

export interface InvalidationPublisher {
  publish (invalidation: Invalidation): void
}

export function isInvalidation (value: unknown): value is Invalidation {
  if (typeof value !== 'object' || value === null) return false
  const v = value as { kind?: unknown; id?: unknown; deleted?: unknown }
  if (v.kind === 'all') return true
  if (v.kind === 'partner' && v.deleted !== undefined && v.deleted !== true) return false
  return (v.kind === 'key' || v.kind === 'policy' || v.kind === 'partner') && typeof v.id === 'string'
}
