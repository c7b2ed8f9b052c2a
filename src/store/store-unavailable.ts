// Telling "the store could not be reached" from every other failure, so callers can answer 503
// governance_unavailable (try again later) rather than 500 (something is wrong with us).

/** node's socket errors and postgres.js's connection errors (a stalled connection's included) */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT',
])

/** another process held the embedded file's lock past busy_timeout (better-sqlite3 gives extended codes: SQLITE_BUSY_SNAPSHOT…) */
const SQLITE_LOCK = /^SQLITE_(?:BUSY|LOCKED)(?:_[A-Z]+)?$/

/**
 * PostgreSQL SQLSTATEs of a server that cannot take the query now: class 08 (connection
 * exception), shutting down or starting up (57P01–57P03), too many connections (53300).
 */
const UNAVAILABLE_SQLSTATE = /^(?:08[0-9A-Z]{3}|57P0[123]|53300)$/

/** true when `err` says the store was unreachable or refused to serve, not that the request was wrong */
export function isStoreUnavailable (err: unknown): boolean {
  if (err instanceof AggregateError) return err.errors.some(isStoreUnavailable) // one per address tried
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && (CONNECTION_CODES.has(code) || SQLITE_LOCK.test(code) || UNAVAILABLE_SQLSTATE.test(code))
}

/** the error's code, to name it in a response without the host, port or query a message may carry */
export function storeErrorCode (err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    return storeErrorCode(err.errors.find(isStoreUnavailable) ?? err.errors[0])
  }
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'unknown'
}
