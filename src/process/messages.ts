// Messages between the cluster primary and its workers over the IPC channel.
import { isInvalidation, type Invalidation } from '../store/invalidation.js'

// (The primary stops a worker with SIGTERM, not a message: a message sent while the worker is
// still loading its modules has no listener yet and is lost.)
export type PrimaryToWorker = { type: 'invalidate'; invalidation: Invalidation }

export function isPrimaryToWorker (message: unknown): message is PrimaryToWorker {
  if (typeof message !== 'object' || message === null) return false
  const m = message as { type?: unknown; invalidation?: unknown }
  return m.type === 'invalidate' && isInvalidation(m.invalidation)
}
