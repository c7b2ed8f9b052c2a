// Partner bodies (docs/admin-api.md): slug, base URLs per environment, upstream auth and the
// timeout / retry / circuit-breaker settings, with defaults filled in.
//
// PATCH semantics: a present field replaces the stored one, except that `base_urls`, `timeouts`,
// `retry` and `circuit_breaker` merge into the stored value (RFC 7396 style: a member set to null
// removes that environment, or restores that setting's default). So `{"retry":{"max_attempts":3}}`
// keeps the partner's other retry settings instead of silently resetting them.
import { ValidationError } from '../errors.js'
import { defaultCircuitBreaker, defaultRetry, defaultTimeouts, type CircuitBreakerSettings, type Partner, type PartnerAuth, type PartnerInput, type RetrySettings, type Timeouts } from '../store/model.js'
import {
  array, boolean, bodyObject, child, httpUrl, integer, item, type JsonObject, matching, memberName, object, onlyFields,
} from './validate.js'

export const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/
export const ENVIRONMENT = /^[a-z][a-z0-9_-]{0,31}$/
export const SLUG_SHAPE = 'lowercase letters, digits and dashes, starting with a letter or digit, at most 63 characters'
export const ENVIRONMENT_SHAPE = 'lowercase letters, digits, _ and -, starting with a letter, at most 32 characters'

const FIELDS = new Set(['slug', 'base_urls', 'auth', 'timeouts', 'retry', 'circuit_breaker'])
const MAX_ENVIRONMENTS = 32

export function parsePartnerCreate (body: unknown): PartnerInput {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  if (b.base_urls === undefined || b.base_urls === null) throw new ValidationError('base_urls', 'is required')
  if (b.auth === undefined || b.auth === null) throw new ValidationError('auth', 'is required')
  return {
    slug: matching(b.slug, 'slug', SLUG, SLUG_SHAPE),
    base_urls: baseUrls(b.base_urls, {}),
    auth: auth(b.auth),
    timeouts: timeouts(b.timeouts, defaultTimeouts()),
    retry: retry(b.retry, defaultRetry()),
    circuit_breaker: circuitBreaker(b.circuit_breaker, defaultCircuitBreaker()),
  }
}

/** Only the fields present in `body`, each merged with `current` where the header says so. */
export function parsePartnerPatch (body: unknown, current: Partner): Partial<PartnerInput> {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  const patch: Partial<PartnerInput> = {}
  if (b.slug !== undefined) patch.slug = matching(b.slug, 'slug', SLUG, SLUG_SHAPE)
  if (b.base_urls !== undefined) {
    if (b.base_urls === null) throw new ValidationError('base_urls', 'cannot be removed; a partner needs at least one environment')
    patch.base_urls = baseUrls(b.base_urls, current.base_urls)
  }
  if (b.auth !== undefined) patch.auth = auth(b.auth)
  if (b.timeouts !== undefined) patch.timeouts = timeouts(b.timeouts, current.timeouts)
  if (b.retry !== undefined) patch.retry = retry(b.retry, current.retry)
  if (b.circuit_breaker !== undefined) patch.circuit_breaker = circuitBreaker(b.circuit_breaker, current.circuit_breaker)
  return patch
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

// RFC 9110 token characters.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/
// Headers the proxy strips, frames the message with, or owns: a credential there would be
// dropped or would break the request.
const RESERVED_HEADERS = new Set([
  'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length',
  'content-type', 'forwarded', 'x-relaykey', 'traceparent', 'payment-signature', 'x-payment',
])
const HEADER_VALUE = /^[\u0020-\u007e]*$/
const QUERY_NAME = /^[A-Za-z0-9._~-]{1,128}$/
const HEADER_AUTH_FIELDS = new Set(['type', 'name', 'prefix'])
const BEARER_AUTH_FIELDS = new Set(['type'])
const QUERY_AUTH_FIELDS = new Set(['type', 'name'])

function auth (value: unknown): PartnerAuth {
  const o = object(value, 'auth')
  switch (o.type) {
    case 'header': {
      onlyFields(o, HEADER_AUTH_FIELDS, 'auth')
      const name = matching(o.name, 'auth.name', HEADER_NAME, 'a valid HTTP header name')
      const lower = name.toLowerCase()
      if (RESERVED_HEADERS.has(lower) || lower.startsWith('proxy-') || lower.startsWith('x-forwarded-')) {
        throw new ValidationError('auth.name', 'is a header the proxy strips or controls')
      }
      let prefix = ''
      if (o.prefix !== undefined && o.prefix !== null) {
        if (typeof o.prefix !== 'string') throw new ValidationError('auth.prefix', 'must be a string')
        if (o.prefix.length > 256 || !HEADER_VALUE.test(o.prefix)) {
          throw new ValidationError('auth.prefix', 'must be at most 256 printable ASCII characters')
        }
        prefix = o.prefix
      }
      return { type: 'header', name, prefix }
    }
    case 'bearer':
      onlyFields(o, BEARER_AUTH_FIELDS, 'auth')
      return { type: 'bearer' }
    case 'query':
      onlyFields(o, QUERY_AUTH_FIELDS, 'auth')
      return { type: 'query', name: matching(o.name, 'auth.name', QUERY_NAME, 'letters, digits, ".", "_", "~" or "-"') }
    default:
      throw new ValidationError('auth.type', "must be 'header', 'bearer' or 'query'")
  }
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
