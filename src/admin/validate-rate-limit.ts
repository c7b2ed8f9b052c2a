// `rate_limit` shapes shared by policies (per key, per customer) and credentials (vendor quota).
import type { RateLimit } from '../store/model.js'
import { ValidationError } from '../errors.js'
import { child } from '../validation/field-path.js'
import { integer, object, onlyFields } from '../validation/json-value.js'

const FIELDS = new Set(['requests', 'per_seconds', 'burst'])
// A month of seconds: longer windows belong to budgets, not rate limits.
const MAX_WINDOW_SECONDS = 31 * 24 * 3600
const MAX_REQUESTS = 1_000_000_000
// GCRA adds requests' spacing to an epoch-ms timestamp (a double, exact to about 0.0002 ms
// now): past this rate the spacing is lost to rounding and the limit stops holding exactly.
// No node forwards anywhere near it, so such a limit could only be a typo.
const MAX_PER_SECOND = 100_000

/** `{requests, per_seconds, burst?}` or null (no limit); burst defaults to requests. */
export function rateLimit (value: unknown, field: string): RateLimit | null {
  if (value === undefined || value === null) return null
  const o = object(value, field)
  onlyFields(o, FIELDS, field)
  const requests = integer(o.requests, child(field, 'requests'), 1, MAX_REQUESTS)
  const perSeconds = integer(o.per_seconds, child(field, 'per_seconds'), 1, MAX_WINDOW_SECONDS)
  if (requests / perSeconds > MAX_PER_SECOND) {
    throw new ValidationError(child(field, 'requests'), `must be at most ${MAX_PER_SECOND} per second (requests / per_seconds); faster limits cannot be kept exactly`)
  }
  const burst = o.burst === undefined || o.burst === null
    ? requests
    : integer(o.burst, child(field, 'burst'), 1, MAX_REQUESTS)
  return { requests, per_seconds: perSeconds, burst }
}
