// Binding bodies (docs/admin-api.md): which partner a policy's keys may call, optionally pinned to
// some of the partner's credentials. References are resolved by the route, which owns the store.
import { ValidationError } from '../errors.js'
import { bodyObject } from './validate.js'
import { item } from '../validation/field-path.js'
import { array, onlyFields, string } from '../validation/json-value.js'

export interface BindingRequest {
  /** policy id or name */
  policy: string
  /** partner slug */
  partner: string
  /** credential ids; null = all of the partner's credentials for the key's environment */
  credentials: string[] | null
}

const FIELDS = new Set(['policy', 'partner', 'credentials'])
const MAX_CREDENTIALS = 100

export function parseBindingCreate (body: unknown): BindingRequest {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  return {
    policy: string(b.policy, 'policy', 256),
    partner: string(b.partner, 'partner', 256),
    credentials: credentials(b.credentials),
  }
}

function credentials (value: unknown): string[] | null {
  if (value === undefined || value === null) return null
  const list = array(value, 'credentials', MAX_CREDENTIALS)
  // An empty list would bind the partner with nothing to call it with: omit the field instead.
  if (list.length === 0) throw new ValidationError('credentials', 'must list at least one credential id, or be omitted for all')
  const ids: string[] = []
  for (const [i, id] of list.entries()) {
    const s = string(id, item('credentials', i), 256)
    if (ids.includes(s)) throw new ValidationError(item('credentials', i), 'is listed twice')
    ids.push(s)
  }
  return ids
}
