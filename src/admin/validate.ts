// Shared checks for admin request bodies. Each returns the typed value or throws a
// ValidationError naming the dotted field (`retry.max_attempts`, `allow[1].path`), so every
// resource validator reads as a list of fields. Messages never echo the offending value: it
// may be a secret pasted into the wrong field.
import { ValidationError } from '../errors.js'

export type JsonObject = Record<string, unknown>

// Control characters (C0, DEL, C1) have no business in names, labels or header values.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/** `parent.key`, or `key` at the top level */
export function child (parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`
}

/** `parent[index]` */
export function item (parent: string, index: number): string {
  return `${parent}[${index}]`
}

/** A member name fit for an error message: bodies are client-controlled, so long names are cut. */
export function memberName (key: string): string {
  const safe = key.replace(CONTROL, '?')
  return safe.length > 64 ? `${safe.slice(0, 61)}...` : safe
}

/** The request body as an object; `undefined` (no body) is reported like any other non-object. */
export function bodyObject (value: unknown): JsonObject {
  if (value === undefined) throw new ValidationError('body', 'a JSON object is required')
  return object(value, 'body')
}

/** An optional body (e.g. rotate): absent counts as `{}`. */
export function optionalBodyObject (value: unknown): JsonObject {
  return value === undefined ? {} : object(value, 'body')
}

export function object (value: unknown, field: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError(field, 'must be an object')
  }
  return value as JsonObject
}

/** Refuses members outside `allowed`; `parent` prefixes the reported field. */
export function onlyFields (value: JsonObject, allowed: ReadonlySet<string>, parent: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) throw new ValidationError(child(parent, memberName(key)), 'unknown field')
  }
}

export function required (value: unknown, field: string): unknown {
  if (value === undefined || value === null) throw new ValidationError(field, 'is required')
  return value
}

export function string (value: unknown, field: string, maxLength: number): string {
  if (value === undefined || value === null) throw new ValidationError(field, 'is required')
  if (typeof value !== 'string') throw new ValidationError(field, 'must be a string')
  if (value.length === 0) throw new ValidationError(field, 'must not be empty')
  if (value.length > maxLength) throw new ValidationError(field, `must be at most ${maxLength} characters`)
  if (value.includes('\u0000')) throw new ValidationError(field, NO_NUL)
  return value
}

/** PostgreSQL text and jsonb cannot hold NUL; SQLite could, so both modes refuse it alike */
export const NO_NUL = 'must not contain NUL characters'

/**
 * An absolute http(s) URL without credentials (settings are readable over the admin API;
 * secrets belong in a credential) and without a fragment; without a query either (RelayKey
 * appends paths) unless `query` (an OAuth2 token URL may have one). `new URL` drops an empty
 * `?` or `#`, so the raw text is checked too.
 */
export function httpUrl (value: unknown, field: string, query = false): URL {
  const s = string(value, field, 2048)
  let url: URL
  try {
    url = new URL(s)
  } catch {
    throw new ValidationError(field, 'must be an absolute http or https URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ValidationError(field, 'must be an absolute http or https URL')
  if (url.username !== '' || url.password !== '') throw new ValidationError(field, 'must not contain credentials; put them in a credential')
  if (!query && (url.search !== '' || s.includes('?'))) throw new ValidationError(field, 'must not contain a query string')
  if (url.hash !== '' || s.includes('#')) throw new ValidationError(field, 'must not contain a fragment')
  return url
}

/** A string matching `pattern`; `shape` explains the pattern to a human. */
export function matching (value: unknown, field: string, pattern: RegExp, shape: string): string {
  const s = string(value, field, 1024)
  if (!pattern.test(s)) throw new ValidationError(field, `must be ${shape}`)
  return s
}

/** A human-chosen name or label: non-empty, bounded, no control characters, no edge spaces. */
export function label (value: unknown, field: string, maxLength = 128): string {
  const s = string(value, field, maxLength)
  if (CONTROL.test(s)) throw new ValidationError(field, 'must not contain control characters')
  if (s.trim() !== s) throw new ValidationError(field, 'must not start or end with whitespace')
  return s
}

/** `label`, or null when absent or null. */
export function optionalLabel (value: unknown, field: string, maxLength = 128): string | null {
  return value === undefined || value === null ? null : label(value, field, maxLength)
}

export function integer (value: unknown, field: string, min: number, max: number): number {
  if (value === undefined || value === null) throw new ValidationError(field, 'is required')
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new ValidationError(field, 'must be an integer')
  if (value < min || value > max) throw new ValidationError(field, `must be between ${min} and ${max}`)
  return value
}

export function boolean (value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw new ValidationError(field, 'must be true or false')
  return value
}

export function array (value: unknown, field: string, maxItems: number): unknown[] {
  if (!Array.isArray(value)) throw new ValidationError(field, 'must be an array')
  if (value.length > maxItems) throw new ValidationError(field, `must have at most ${maxItems} items`)
  return value
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
