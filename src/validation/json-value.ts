// Checks of one JSON value: each returns the typed value or throws a ValidationError naming the
// dotted field (field-path.ts), so every validator of a stored setting reads as a list of fields.
// Messages never echo the offending value: it may be a secret pasted into the wrong field.
import { ValidationError } from '../errors.js'
import { child } from './field-path.js'

export type JsonObject = Record<string, unknown>

// Control characters (C0, DEL, C1) have no business in names, labels or header values.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/** PostgreSQL text and jsonb cannot hold NUL; SQLite could, so both modes refuse it alike */
export const NO_NUL = 'must not contain NUL characters'

/** A member name fit for an error message: bodies are client-controlled, so long names are cut. */
export function memberName (key: string): string {
  const safe = key.replace(CONTROL, '?')
  return safe.length > 64 ? `${safe.slice(0, 61)}...` : safe
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
