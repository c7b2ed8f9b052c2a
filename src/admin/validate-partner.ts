// Partner bodies (docs/admin-api.md): slug, base URLs per environment, upstream auth
// (validate-partner-auth.ts), the partner's own CA for HTTPS and the timeout / retry /
// circuit-breaker settings, with defaults filled in.
//
// PATCH semantics: a present field replaces the stored one, except that `base_urls`, `timeouts`,
// `retry` and `circuit_breaker` merge into the stored value (RFC 7396 style: a member set to null
// removes that environment, or restores that setting's default). So `{"retry":{"max_attempts":3}}`
// keeps the partner's other retry settings instead of silently resetting them.
import { ValidationError } from '../errors.js'
import { defaultCircuitBreaker, defaultRetry, defaultTimeouts, type CircuitBreakerSettings, type Partner, type PartnerInput, type PartnerTls, type RetrySettings, type Timeouts } from '../store/model.js'
import { bodyObject } from './validate.js'
import { child, item } from '../validation/field-path.js'
import { array, boolean, integer, type JsonObject, matching, memberName, object, onlyFields } from '../validation/json-value.js'
import { httpUrl } from '../validation/http-url.js'
import { partnerAuth } from './validate-partner-auth.js'
import { secretReference, type SecretRules } from './validate-secret.js'

/** what a caller without secrets to save passes: inline and file references are refused */
const NO_SECRETS: SecretRules = { cipher: null, filesDir: null }

export const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/
export const ENVIRONMENT = /^[a-z][a-z0-9_-]{0,31}$/
export const SLUG_SHAPE = 'lowercase letters, digits and dashes, starting with a letter or digit, at most 63 characters'
export const ENVIRONMENT_SHAPE = 'lowercase letters, digits, _ and -, starting with a letter, at most 32 characters'

const FIELDS = new Set(['slug', 'base_urls', 'auth', 'tls', 'timeouts', 'retry', 'circuit_breaker'])
const TLS_FIELDS = new Set(['ca'])
const MAX_ENVIRONMENTS = 32

export function parsePartnerCreate (body: unknown, rules: SecretRules = NO_SECRETS): PartnerInput {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  if (b.base_urls === undefined || b.base_urls === null) throw new ValidationError('base_urls', 'is required')
  if (b.auth === undefined || b.auth === null) throw new ValidationError('auth', 'is required')
  const urls = baseUrls(b.base_urls, {})
  return {
    slug: matching(b.slug, 'slug', SLUG, SLUG_SHAPE),
    base_urls: urls,
    auth: partnerAuth(b.auth, origins(urls)),
    tls: tls(b.tls, rules),
    timeouts: timeouts(b.timeouts, defaultTimeouts()),
    retry: retry(b.retry, defaultRetry()),
    circuit_breaker: circuitBreaker(b.circuit_breaker, defaultCircuitBreaker()),
  }
}

/** Only the fields present in `body`, each merged with `current` where the header says so. */
export function parsePartnerPatch (body: unknown, current: Partner, rules: SecretRules = NO_SECRETS): Partial<PartnerInput> {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  const patch: Partial<PartnerInput> = {}
  if (b.slug !== undefined) patch.slug = matching(b.slug, 'slug', SLUG, SLUG_SHAPE)
  if (b.base_urls !== undefined) {
    if (b.base_urls === null) throw new ValidationError('base_urls', 'cannot be removed; a partner needs at least one environment')
    patch.base_urls = baseUrls(b.base_urls, current.base_urls)
  }
  if (b.auth !== undefined) patch.auth = partnerAuth(b.auth, origins(patch.base_urls ?? current.base_urls))
  else if (patch.base_urls !== undefined && (current.auth.type === 'oauth2_client_credentials' || current.auth.type === 'mtls')) {
    // the token URL must stay on one of the partner's origins; mTLS needs https
    partnerAuth(current.auth, origins(patch.base_urls))
  }
  if (b.tls !== undefined) patch.tls = tls(b.tls, rules)
  if (b.timeouts !== undefined) patch.timeouts = timeouts(b.timeouts, current.timeouts)
  if (b.retry !== undefined) patch.retry = retry(b.retry, current.retry)
  if (b.circuit_breaker !== undefined) patch.circuit_breaker = circuitBreaker(b.circuit_breaker, current.circuit_breaker)
  return patch
}

function origins (urls: Record<string, string>): string[] {
  return [...new Set(Object.values(urls).map((u) => new URL(u).origin))]
}

/** `{"ca": <secret reference>}`: a PEM bundle trusted for this partner's HTTPS; null: the system's CAs */
function tls (value: unknown, rules: SecretRules): PartnerTls | null {
  if (value === undefined || value === null) return null
  const o = object(value, 'tls')
  onlyFields(o, TLS_FIELDS, 'tls')
  return { ca: secretReference(o.ca, 'tls.ca', rules, true) }
}

function baseUrls (value: unknown, current: Record<string, string>): Record<string, string> {
  const o = object(value, 'base_urls')
  const result: Record<string, string> = { ...current }
  for (const [env, url] of Object.entries(o)) {
    const field = child('base_urls', memberName(env))
    if (!ENVIRONMENT.test(env)) throw new ValidationError(field, `environment names must be ${ENVIRONMENT_SHAPE}`)
    if (url === null) delete result[env]
    else result[env] = baseUrl(url, field)
  }
  const count = Object.keys(result).length
  if (count === 0) throw new ValidationError('base_urls', 'must name at least one environment')
  if (count > MAX_ENVIRONMENTS) throw new ValidationError('base_urls', `must name at most ${MAX_ENVIRONMENTS} environments`)
  return result
}

/** An absolute http(s) URL without credentials, query or fragment, stored without a trailing slash. */
export function baseUrl (value: unknown, field: string): string {
  const url = httpUrl(value, field)
  let path = url.pathname
  while (path.endsWith('/')) path = path.slice(0, -1)
  return `${url.protocol}//${url.host}${path}`
}

const TIMEOUT_FIELDS = new Set(['connect_ms', 'request_ms'])
const RETRY_FIELDS = new Set(['max_attempts', 'base_delay_ms', 'max_delay_ms', 'on_status', 'respect_retry_after', 'budget_percent', 'budget_min_per_second'])
const BREAKER_FIELDS = new Set(['failure_threshold', 'open_ms', 'max_in_flight'])

/**
 * A settings object merged onto `base`: absent → base, null → defaults, members set to null →
 * that member's default. The merged object is then checked as a whole.
 */
function merged (value: unknown, field: string, base: object, defaults: object, fields: ReadonlySet<string>): JsonObject {
  if (value === null) return { ...defaults }
  if (value === undefined) return { ...base }
  const o = object(value, field)
  onlyFields(o, fields, field)
  const result: JsonObject = { ...base }
  const fallback: JsonObject = { ...defaults }
  for (const [key, member] of Object.entries(o)) result[key] = member === null ? fallback[key] : member
  return result
}

function timeouts (value: unknown, base: Timeouts): Timeouts {
  const o = merged(value, 'timeouts', base, defaultTimeouts(), TIMEOUT_FIELDS)
  return {
    connect_ms: integer(o.connect_ms, 'timeouts.connect_ms', 1, 120_000),
    request_ms: integer(o.request_ms, 'timeouts.request_ms', 1, 3_600_000),
  }
}

function retry (value: unknown, base: RetrySettings): RetrySettings {
  const o = merged(value, 'retry', base, defaultRetry(), RETRY_FIELDS)
  const baseDelay = integer(o.base_delay_ms, 'retry.base_delay_ms', 0, 60_000)
  const maxDelay = integer(o.max_delay_ms, 'retry.max_delay_ms', 0, 600_000)
  if (maxDelay < baseDelay) throw new ValidationError('retry.max_delay_ms', 'must be at least retry.base_delay_ms')
  const onStatus: number[] = []
  for (const [i, status] of array(o.on_status, 'retry.on_status', 200).entries()) {
    const code = integer(status, item('retry.on_status', i), 400, 599)
    if (onStatus.includes(code)) throw new ValidationError(item('retry.on_status', i), 'is listed twice')
    onStatus.push(code)
  }
  return {
    max_attempts: integer(o.max_attempts, 'retry.max_attempts', 1, 10),
    base_delay_ms: baseDelay,
    max_delay_ms: maxDelay,
    on_status: onStatus,
    respect_retry_after: boolean(o.respect_retry_after, 'retry.respect_retry_after'),
    budget_percent: integer(o.budget_percent, 'retry.budget_percent', 0, 100),
    budget_min_per_second: integer(o.budget_min_per_second, 'retry.budget_min_per_second', 0, 10_000),
  }
}

function circuitBreaker (value: unknown, base: CircuitBreakerSettings): CircuitBreakerSettings {
  const o = merged(value, 'circuit_breaker', base, defaultCircuitBreaker(), BREAKER_FIELDS)
  return {
    failure_threshold: integer(o.failure_threshold, 'circuit_breaker.failure_threshold', 1, 10_000),
    open_ms: integer(o.open_ms, 'circuit_breaker.open_ms', 1, 86_400_000),
    max_in_flight: integer(o.max_in_flight, 'circuit_breaker.max_in_flight', 1, 1_000_000),
  }
}
