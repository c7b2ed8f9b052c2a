// Control-plane records ↔ PostgreSQL rows. A row comes either straight from a table (times
// as Date, jsonb already parsed) or from to_jsonb() inside resolveKey (times as strings).
import type postgres from 'postgres'
import { defaultCircuitBreaker, defaultRetry, defaultTimeouts, type Binding, type Credential, type Partner, type Policy, type VirtualKey } from '../model.js'

export type Row = postgres.Row
type Value = postgres.ParameterOrJSON<never>
export interface PatchValues { values: Record<string, Value>; columns: string[] }

// Column lists double as the allow-list for patches: nothing else reaches an UPDATE.
export const PARTNER_COLUMNS = ['slug', 'base_urls', 'auth', 'tls', 'timeouts', 'retry', 'circuit_breaker']
export const CREDENTIAL_COLUMNS = ['name', 'environment', 'secret', 'secret_parts', 'weight', 'rate_limit']
export const POLICY_COLUMNS = [
  'name', 'rate_limit', 'customer_rate_limit', 'budget', 'customer_budget', 'costs', 'allow', 'payment', 'on_governance_failure',
  'max_in_flight', 'customer_max_in_flight',
]
export const KEY_COLUMNS = ['name', 'policy_id', 'customer', 'team', 'service', 'expires_at']
const JSON_COLUMNS = new Set([
  'base_urls', 'auth', 'tls', 'timeouts', 'retry', 'circuit_breaker', 'secret', 'secret_parts', 'rate_limit',
  'customer_rate_limit', 'budget', 'customer_budget', 'costs', 'allow', 'payment',
])

/** SQL NULL for null, so `IS NULL` means "not set" rather than a JSON null inside jsonb. */
export function jsonParam (sql: postgres.Sql, value: unknown): postgres.Parameter | null {
  return value === null || value === undefined ? null : sql.json(value as postgres.JSONValue)
}

/** The columns a patch sets: only known columns, only fields that are present. */
export function patchValues (sql: postgres.Sql, patch: object, columns: readonly string[]): PatchValues {
  const given = patch as Record<string, unknown>
  const values: Record<string, Value> = {}
  for (const column of columns) {
    const value = given[column]
    if (value === undefined) continue
    values[column] = JSON_COLUMNS.has(column)
      ? jsonParam(sql, value)
      : column === 'expires_at' ? dateOrNull(value as string | null) : value as string | number | null
  }
  return { values, columns: Object.keys(values) }
}

export function dateOrNull (value: string | null): Date | null {
  return value === null ? null : new Date(value)
}

export function mapFirst<T> (rows: readonly Row[], map: (row: Row) => T): T | null {
  return rows.length === 0 ? null : map(rows[0])
}

/** Dates from columns, RFC 3339 strings from jsonb: both become `toISOString()` form. */
export function iso (value: Date | string): string {
  return new Date(value).toISOString()
}

export function isoOrNull (value: Date | string | null): string | null {
  return value === null ? null : iso(value)
}

export function toPartner (r: Row): Partner {
  return {
    id: r.id,
    slug: r.slug,
    base_urls: r.base_urls,
    auth: r.auth,
    tls: r.tls ?? null,
    timeouts: { ...defaultTimeouts(), ...r.timeouts },
    retry: { ...defaultRetry(), ...r.retry },
    circuit_breaker: { ...defaultCircuitBreaker(), ...r.circuit_breaker },
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  }
}

export function toCredential (r: Row): Credential {
  return {
    id: r.id,
    partner_id: r.partner_id,
    name: r.name,
    environment: r.environment,
    secret: r.secret ?? null,
    secret_parts: r.secret_parts ?? {},
    weight: r.weight,
    rate_limit: r.rate_limit,
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  }
}

export function toPolicy (r: Row): Policy {
  return {
    id: r.id,
    name: r.name,
    rate_limit: r.rate_limit,
    customer_rate_limit: r.customer_rate_limit,
    budget: r.budget,
    customer_budget: r.customer_budget,
    costs: r.costs,
    allow: r.allow,
    payment: r.payment,
    on_governance_failure: r.on_governance_failure,
    max_in_flight: r.max_in_flight ?? null,
    customer_max_in_flight: r.customer_max_in_flight ?? null,
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  }
}

export function toBinding (r: Row): Binding {
  return {
    id: r.id,
    policy_id: r.policy_id,
    partner_id: r.partner_id,
    credentials: r.credentials,
    created_at: iso(r.created_at),
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
    expires_at: isoOrNull(r.expires_at),
    revoked_at: isoOrNull(r.revoked_at),
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  }
}
