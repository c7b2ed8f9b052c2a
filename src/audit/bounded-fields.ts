// What a client writes into its own audit event — the partner segment and the path of its URL —
// bounded before it is recorded. Unbounded, one request to `/proxy/<6,000 characters>/x` made an
// event larger than an index row may be: PostgreSQL refused its whole batch, and every later
// event of that worker waited behind it.

/** a partner slug is at most 63 characters; a longer segment names no partner */
export const MAX_PARTNER_CHARS = 63
/** paths are kept whole up to this, then cut */
export const MAX_PATH_CHARS = 2048

/** HOT PATH: the segment as sent, cut to MAX_PARTNER_CHARS */
export function boundedPartner (segment: string): string {
  return segment.length <= MAX_PARTNER_CHARS ? segment : segment.slice(0, MAX_PARTNER_CHARS)
}

/** HOT PATH: the path as sent, or its first MAX_PATH_CHARS and a marker saying how much was cut */
export function boundedPath (path: string): string {
  if (path.length <= MAX_PATH_CHARS) return path
  return `${path.slice(0, MAX_PATH_CHARS)}…[${path.length - MAX_PATH_CHARS} more characters]`
}
