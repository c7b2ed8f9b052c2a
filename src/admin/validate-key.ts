// Virtual-key bodies (docs/admin-api.md). The policy is named by id or name here and resolved to an
// id by the route, which owns the store.
import { ValidationError } from '../errors.js'
import type { KeyInput, VirtualKey } from '../store/model.js'
import { bodyObject, optionalBodyObject, timestamp } from './validate.js'
import { integer, label, matching, onlyFields, optionalLabel, string } from '../validation/json-value.js'
import { ENVIRONMENT, ENVIRONMENT_SHAPE } from './validate-partner.js'

export type KeyRequest = Omit<KeyInput, 'policy_id'> & { policy: string }
export type KeyPatchRequest = Partial<Omit<KeyRequest, 'environment'>>

const FIELDS = new Set(['name', 'policy', 'environment', 'customer', 'team', 'service', 'expires_at'])
const ROTATE_FIELDS = new Set(['grace_seconds'])
/** 30 days: long enough to roll any fleet, short enough that a leaked old key dies. */
export const MAX_GRACE_SECONDS = 2_592_000
const LABEL_MAX = 256

export function parseKeyCreate (body: unknown, now: number): KeyRequest {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  return {
    name: label(b.name, 'name'),
    policy: string(b.policy, 'policy', 256),
    environment: matching(b.environment, 'environment', ENVIRONMENT, ENVIRONMENT_SHAPE),
    customer: optionalLabel(b.customer, 'customer', LABEL_MAX),
    team: optionalLabel(b.team, 'team', LABEL_MAX),
    service: optionalLabel(b.service, 'service', LABEL_MAX),
    expires_at: expiresAt(b.expires_at, now),
  }
}

/** Only the fields present; null clears customer, team, service or expires_at. */
export function parseKeyPatch (body: unknown, current: VirtualKey, now: number): KeyPatchRequest {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  // Audit events and budgets are attributed by environment; a key keeps its environment for life.
  if (b.environment !== undefined && b.environment !== current.environment) {
    throw new ValidationError('environment', 'cannot be changed; issue a new key for the other environment')
  }
  const patch: KeyPatchRequest = {}
  if (b.name !== undefined) patch.name = label(b.name, 'name')
  if (b.policy !== undefined) patch.policy = string(b.policy, 'policy', 256)
  if (b.customer !== undefined) patch.customer = optionalLabel(b.customer, 'customer', LABEL_MAX)
  if (b.team !== undefined) patch.team = optionalLabel(b.team, 'team', LABEL_MAX)
  if (b.service !== undefined) patch.service = optionalLabel(b.service, 'service', LABEL_MAX)
  if (b.expires_at !== undefined) patch.expires_at = expiresAt(b.expires_at, now)
  return patch
}

/** `{grace_seconds?}`; the body itself is optional. */
export function parseRotate (body: unknown): { graceSeconds: number } {
  const b = optionalBodyObject(body)
  onlyFields(b, ROTATE_FIELDS, '')
  const grace = b.grace_seconds === undefined || b.grace_seconds === null
    ? 0
    : integer(b.grace_seconds, 'grace_seconds', 0, MAX_GRACE_SECONDS)
  return { graceSeconds: grace }
}

function expiresAt (value: unknown, now: number): string | null {
  if (value === undefined || value === null) return null
  const at = timestamp(value, 'expires_at')
  if (at.getTime() <= now) throw new ValidationError('expires_at', 'must be in the future')
  return at.toISOString()
}
