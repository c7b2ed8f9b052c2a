// Messages between the cluster primary and its workers over the IPC channel.
import { isInvalidation, type Invalidation } from './invalidation.js'

export type PrimaryToWorker =
  | { type: 'invalidate'; invalidation: Invalidation }
  | { type: 'shutdown' }

export function isPrimaryToWorker (message: unknown): message is PrimaryToWorker {
  if (typeof message !== 'object' || message === null) return false
  const m = message as { type?: unknown; invalidation?: unknown }
  return m.type === 'shutdown' || (m.type === 'invalidate' && isInvalidation(m.invalidation))
}
