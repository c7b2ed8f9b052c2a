// The admin API's own request checks: the body as a whole, query parameters, and RFC 3339
// timestamps (a key's expiry, list filters). Each throws a ValidationError naming the field or
// parameter; the checks of single JSON values inside a body are in src/validation/.
import { ValidationError } from '../errors.js'
import { memberName, NO_NUL, object, string, type JsonObject } from '../validation/json-value.js'

/** The request body as an object; `undefined` (no body) is reported like any other non-object. */
export function bodyObject (value: unknown): JsonObject {
  if (value === undefined) throw new ValidationError('body', 'a JSON object is required')
  return object(value, 'body')
}

/** An optional body (e.g. rotate): absent counts as `{}`. */
export function optionalBodyObject (value: unknown): JsonObject {
  return value === undefined ? {} : object(value, 'body')
}

/** Refuses query parameters a route does not know, and repeated ones, so a typo never widens a list. */
export function checkQuery (query: URLSearchParams, allowed: ReadonlySet<string>): void {
  const seen = new Set<string>()
  for (const name of query.keys()) {
    if (!allowed.has(name)) throw new ValidationError(memberName(name), 'unknown query parameter')
    if (seen.has(name)) throw new ValidationError(memberName(name), 'may be given only once')
    seen.add(name)
  }
}

/** `name` from the query, or null when absent; an empty value is refused rather than matching nothing. */
export function queryValue (query: URLSearchParams, name: string): string | null {
  const value = query.get(name)
  if (value === null) return null
  if (value === '') throw new ValidationError(name, 'must not be empty')
  if (value.includes('\u0000')) throw new ValidationError(name, NO_NUL)
  return value
}

/** a whole number from `min` to `max` in the query, or null when absent */
export function queryWholeNumber (query: URLSearchParams, name: string, min: number, max: number): number | null {
  const raw = queryValue(query, name)
  if (raw === null) return null
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new ValidationError(name, `must be a whole number from ${min} to ${max}`)
  return Number(raw)
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/

/** An RFC 3339 timestamp, returned as UTC ISO; Date.parse alone would roll Feb 30 into March. */
export function timestamp (value: unknown, field: string): Date {
  const s = string(value, field, 64)
  const m = RFC3339.exec(s)
  if (m === null) throw new ValidationError(field, 'must be an RFC 3339 timestamp such as 2030-01-31T00:00:00Z')
  const year = Number(m[1])
  const month = Number(m[2])
  const day = Number(m[3])
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate()
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth ||
      Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 59) {
    throw new ValidationError(field, 'is not a valid date and time')
  }
  const ms = Date.parse(s.toUpperCase())
  if (Number.isNaN(ms)) throw new ValidationError(field, 'is not a valid date and time')
  return new Date(ms)
}
