// Control-plane records ↔ SQLite rows: JSON fields travel as TEXT (SQL NULL for null), times as
// toISOString() text so they compare and sort like the instants they stand for.
import {
  defaultCircuitBreaker, defaultRetry, defaultTimeouts,
  type Binding, type Credential, type KeyInput, type Partner, type PartnerInput, type Policy, type PolicyInput, type CredentialInput, type VirtualKey,
} from '../model.js'

/** A row as better-sqlite3 returns it: column name → TEXT, INTEGER, BLOB or null. */
export type Row = Record<string, any>

export function nowIso (): string {
  return new Date().toISOString()
}

/** Any RFC 3339 time → the one canonical form both stores return. */
export function isoOrNull (value: string | null): string | null {
  return value === null ? null : new Date(value).toISOString()
}

function text (value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value)
}

function parse (value: string | null): any {
  return value === null ? null : JSON.parse(value)
}

/**
 * The fields of `patch` that are present, from an allow-list, on top of `current` with a new
 * updated_at; null when the patch names none of them (nothing to write).
 */
export function merge<T extends { updated_at: string }> (current: T, patch: object, fields: readonly (keyof T & string)[]): T | null {
  const given = patch as Record<string, unknown>
  const next = { ...current } as Record<string, unknown>
  let changed = 0
  for (const field of fields) {
    if (given[field] === undefined) continue
    next[field] = given[field]
    changed++
  }
  return changed === 0 ? null : { ...next, updated_at: nowIso() } as T
}

export const PARTNER_FIELDS: ReadonlyArray<keyof PartnerInput> = ['slug', 'base_urls', 'auth', 'tls', 'timeouts', 'retry', 'circuit_breaker']
export const CREDENTIAL_FIELDS: ReadonlyArray<keyof CredentialInput> = ['name', 'environment', 'secret', 'secret_parts', 'weight', 'rate_limit']
export const POLICY_FIELDS: ReadonlyArray<keyof PolicyInput> = [
  'name', 'rate_limit', 'customer_rate_limit', 'budget', 'customer_budget', 'costs', 'allow', 'payment', 'on_governance_failure',
  'max_in_flight', 'customer_max_in_flight',
]
export const KEY_PATCH_FIELDS: ReadonlyArray<keyof KeyInput> = ['name', 'policy_id', 'customer', 'team', 'service', 'expires_at']

export function partnerParams (p: Partner): Row {
  return {
    id: p.id,
    slug: p.slug,
    base_urls: text(p.base_urls),
    auth: text(p.auth),
    tls: text(p.tls),
    timeouts: text(p.timeouts),
    retry: text(p.retry),
    circuit_breaker: text(p.circuit_breaker),
    created_at: p.created_at,
    updated_at: p.updated_at,
  }
}

export function toPartner (r: Row): Partner {
  return {
    id: r.id,
    slug: r.slug,
    base_urls: parse(r.base_urls),
    auth: parse(r.auth),
    tls: parse(r.tls ?? null),
    timeouts: { ...defaultTimeouts(), ...parse(r.timeouts) },
    retry: { ...defaultRetry(), ...parse(r.retry) },
    circuit_breaker: { ...defaultCircuitBreaker(), ...parse(r.circuit_breaker) },
    created_at: r.created_at,
    updated_at: r.updated_at,
  }
}

export function credentialParams (c: Credential): Row {
  return {
    id: c.id,
    partner_id: c.partner_id,
    name: c.name,
    environment: c.environment,
    // the column is NOT NULL: a credential without one holds the JSON text null
    secret: JSON.stringify(c.secret),
    secret_parts: JSON.stringify(c.secret_parts),
    weight: c.weight,
    rate_limit: text(c.rate_limit),
    created_at: c.created_at,
    updated_at: c.updated_at,
  }
}

export function toCredential (r: Row): Credential {
  return {
    id: r.id,
    partner_id: r.partner_id,
    name: r.name,
    environment: r.environment,
    secret: parse(r.secret),
    secret_parts: parse(r.secret_parts ?? '{}'),
    weight: r.weight,
    rate_limit: parse(r.rate_limit),
    created_at: r.created_at,
    updated_at: r.updated_at,
  }
}

export function policyParams (p: Policy): Row {
  return {
    id: p.id,
    name: p.name,
    rate_limit: text(p.rate_limit),
    customer_rate_limit: text(p.customer_rate_limit),
    budget: text(p.budget),
    customer_budget: text(p.customer_budget),
    costs: text(p.costs),
    allow: text(p.allow),
    payment: text(p.payment),
    on_governance_failure: p.on_governance_failure,
    max_in_flight: p.max_in_flight,
    customer_max_in_flight: p.customer_max_in_flight,
    created_at: p.created_at,
    updated_at: p.updated_at,
  }
}

export function toPolicy (r: Row): Policy {
  return {
    id: r.id,
    name: r.name,
    rate_limit: parse(r.rate_limit),
    customer_rate_limit: parse(r.customer_rate_limit),
    budget: parse(r.budget),
    customer_budget: parse(r.customer_budget),
    costs: parse(r.costs),
    allow: parse(r.allow),
    payment: parse(r.payment),
    on_governance_failure: r.on_governance_failure,
    max_in_flight: r.max_in_flight ?? null,
    customer_max_in_flight: r.customer_max_in_flight ?? null,
    created_at: r.created_at,
    updated_at: r.updated_at,
  }
}

export function bindingParams (b: Binding): Row {
  return {
    id: b.id,
    policy_id: b.policy_id,
    partner_id: b.partner_id,
    credentials: text(b.credentials),
    created_at: b.created_at,
  }
}

export function toBinding (r: Row): Binding {
  return {
    id: r.id,
    policy_id: r.policy_id,
    partner_id: r.partner_id,
    credentials: parse(r.credentials),
    created_at: r.created_at,
  }
}

export function keyParams (k: VirtualKey): Row {
  return {
    id: k.id,
    name: k.name,
    policy_id: k.policy_id,
    environment: k.environment,
    customer: k.customer,
    team: k.team,
    service: k.service,
    prefix: k.prefix,
    expires_at: isoOrNull(k.expires_at),
    revoked_at: k.revoked_at,
    created_at: k.created_at,
    updated_at: k.updated_at,
  }
}

export function toKey (r: Row): VirtualKey {
  return {
    id: r.id,
    name: r.name,
    policy_id: r.policy_id,
    environment: r.environment,
    customer: r.customer,
    team: r.team,
    service: r.service,
    prefix: r.prefix,
    expires_at: r.expires_at,
    revoked_at: r.revoked_at,
    created_at: r.created_at,
    updated_at: r.updated_at,
  }
}
