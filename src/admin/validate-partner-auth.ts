// A partner's `auth` (docs/partners.md): how its requests carry the credential. The static
// schemes (header, bearer, query) and the signing ones (hmac, jwt), OAuth2 client credentials
// and mTLS. Presets expand here into the fields they stand for, so what is stored (and shown)
// is exactly what is applied.
import { ValidationError } from '../errors.js'
import type { CanonicalPart, HmacAuth, JwtAuth, PartnerAuth, SecretHeader } from '../store/model.js'
import { child, item } from '../validation/field-path.js'
import { array, boolean, integer, matching, object, onlyFields, string } from '../validation/json-value.js'
import { httpUrl } from '../validation/http-url.js'

// RFC 9110 token characters.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/
// Headers the proxy strips, frames the message with, or owns: a credential there would be
// dropped or would break the request.
const RESERVED_HEADERS = new Set([
  'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length',
  'content-type', 'forwarded', 'x-relaykey', 'traceparent', 'payment-signature', 'x-payment', 'x-relaykey-request-id',
])
/** headers a canonical {header} part may not name: the partner never sees the client's value */
const STRIPPED_HEADERS = new Set(['host', 'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length', 'x-relaykey',
  'forwarded', 'expect', 'payment-signature', 'x-payment', 'proxy-authorization'])
const HEADER_VALUE = /^[\u0020-\u007e]*$/
const QUERY_NAME = /^[A-Za-z0-9._~-]{1,128}$/
const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/

export const DEFAULT_MAX_SIGNED_BODY_BYTES = 10 * 1024 * 1024
const MAX_SIGNED_BODY_BYTES = 100 * 1024 * 1024

const HEADER_AUTH_FIELDS = new Set(['type', 'name', 'prefix'])
const BEARER_AUTH_FIELDS = new Set(['type'])
const QUERY_AUTH_FIELDS = new Set(['type', 'name'])
const HMAC_FIELDS = new Set(['type', 'preset', 'algorithm', 'encoding', 'canonical', 'separator', 'timestamp_unit', 'timestamp_header',
  'nonce_header', 'signature_header', 'signature_prefix', 'secret_header', 'max_body_bytes'])
const PRESET_FIELDS = new Set(['type', 'preset', 'max_body_bytes'])
const OAUTH2_FIELDS = new Set(['type', 'token_url', 'scope', 'audience', 'client_auth', 'token_url_other_origin'])
const MTLS_FIELDS = new Set(['type', 'header'])
const JWT_FIELDS = new Set(['type', 'preset', 'algorithm', 'header', 'secret_header', 'expires_in_seconds', 'path_claim', 'nonce_claim',
  'body_hash_claim', 'subject_is_secret', 'claims', 'key_id', 'max_body_bytes'])
const SECRET_HEADER_FIELDS = new Set(['name', 'prefix'])

/**
 * Sumsub's request signing, as its API reference describes it: X-App-Token, X-App-Access-Ts
 * (Unix seconds) and X-App-Access-Sig, the lowercase hex HMAC-SHA256 keyed by the secret key
 * over timestamp + upper-case method + path with query + body.
 */
function sumsub (maxBodyBytes: number): HmacAuth {
  return {
    type: 'hmac',
    preset: 'sumsub',
    algorithm: 'sha256',
    encoding: 'hex',
    canonical: ['timestamp', 'method', 'path', 'body'],
    separator: '',
    timestamp_unit: 's',
    timestamp_header: 'x-app-access-ts',
    nonce_header: null,
    signature_header: 'x-app-access-sig',
    signature_prefix: '',
    secret_header: { name: 'x-app-token', prefix: '' },
    max_body_bytes: maxBodyBytes,
  }
}

/**
 * Fireblocks-style request tokens: an RS256 JWT per request in Authorization: Bearer, carrying
 * `uri` (path with query), `nonce`, `iat`, `exp` (30 s), `sub` (the API key) and `bodyHash`
 * (hex SHA-256 of the body), with the API key in X-API-Key.
 */
function fireblocks (maxBodyBytes: number): JwtAuth {
  return {
    type: 'jwt',
    preset: 'fireblocks',
    algorithm: 'RS256',
    header: { name: 'authorization', prefix: 'Bearer ' },
    secret_header: { name: 'x-api-key', prefix: '' },
    expires_in_seconds: 30,
    path_claim: 'uri',
    nonce_claim: 'nonce',
    body_hash_claim: 'bodyHash',
    subject_is_secret: true,
    claims: {},
    key_id: null,
    max_body_bytes: maxBodyBytes,
  }
}

const HMAC_PRESETS: Record<string, (maxBodyBytes: number) => HmacAuth> = { sumsub }
const JWT_PRESETS: Record<string, (maxBodyBytes: number) => JwtAuth> = { fireblocks }

/** `baseOrigins`: the origins of the partner's base URLs (an OAuth2 token URL must be on one of them) */
export function partnerAuth (value: unknown, baseOrigins: readonly string[]): PartnerAuth {
  const o = object(value, 'auth')
  switch (o.type) {
    case 'header': {
      onlyFields(o, HEADER_AUTH_FIELDS, 'auth')
      return { type: 'header', ...secretHeader(o, 'auth') }
    }
    case 'bearer':
      onlyFields(o, BEARER_AUTH_FIELDS, 'auth')
      return { type: 'bearer' }
    case 'query':
      onlyFields(o, QUERY_AUTH_FIELDS, 'auth')
      return { type: 'query', name: matching(o.name, 'auth.name', QUERY_NAME, 'letters, digits, ".", "_", "~" or "-"') }
    case 'hmac': return hmac(o)
    case 'jwt': return jwt(o)
    case 'oauth2_client_credentials': {
      onlyFields(o, OAUTH2_FIELDS, 'auth')
      const url = httpUrl(o.token_url, 'auth.token_url', true)
      // the client secret goes there: only to the partner itself unless the admin says otherwise,
      // and then only over HTTPS
      const otherOrigin = o.token_url_other_origin === undefined ? false : boolean(o.token_url_other_origin, 'auth.token_url_other_origin')
      if (!otherOrigin && !baseOrigins.includes(url.origin)) {
        throw new ValidationError('auth.token_url', `must be on the partner's own origin (${baseOrigins.join(', ')}), or set token_url_other_origin to true for an identity provider of its own`)
      }
      if (otherOrigin && url.protocol !== 'https:') throw new ValidationError('auth.token_url', 'must be an https URL when it is on another origin')
      return {
        type: 'oauth2_client_credentials',
        token_url: url.href,
        scope: optionalText(o.scope, 'auth.scope'),
        audience: optionalText(o.audience, 'auth.audience'),
        client_auth: o.client_auth === undefined || o.client_auth === null ? 'basic' : oneOf(o.client_auth, 'auth.client_auth', ['basic', 'body']),
        token_url_other_origin: otherOrigin,
      }
    }
    case 'mtls':
      onlyFields(o, MTLS_FIELDS, 'auth')
      // a client certificate travels only over TLS: an http base URL would send none
      if (baseOrigins.some((origin) => origin.startsWith('http:'))) throw new ValidationError('auth.type', 'mtls needs https base URLs')
      return { type: 'mtls', header: o.header === undefined || o.header === null ? null : objectHeader(o.header, 'auth.header') }
    default:
      throw new ValidationError('auth.type', "must be 'header', 'bearer', 'query', 'hmac', 'oauth2_client_credentials', 'mtls' or 'jwt'")
  }
}

/** a preset's fields (only max_body_bytes may go beside its name), or null for a custom scheme */
function fromPreset<T> (o: Record<string, unknown>, presets: Record<string, (maxBodyBytes: number) => T>): T | null {
  if (o.preset === undefined || o.preset === null) return null
  onlyFields(o, PRESET_FIELDS, 'auth')
  const name = string(o.preset, 'auth.preset', 64)
  // own members only: "constructor" or "toString" are no presets
  if (!Object.hasOwn(presets, name)) throw new ValidationError('auth.preset', `must be one of: ${Object.keys(presets).join(', ')}`)
  return presets[name]!(maxBodyBytes(o.max_body_bytes))
}

function hmac (o: Record<string, unknown>): HmacAuth {
  const preset = fromPreset(o, HMAC_PRESETS)
  if (preset !== null) return preset
  const maxBody = maxBodyBytes(o.max_body_bytes)
  onlyFields(o, HMAC_FIELDS, 'auth')
  const canonical = array(o.canonical, 'auth.canonical', 32).map((part, i) => canonicalPart(part, item('auth.canonical', i)))
  if (canonical.length === 0) throw new ValidationError('auth.canonical', 'must list at least one part')
  const timestampHeader = optionalHeaderName(o.timestamp_header, 'auth.timestamp_header')
  const nonceHeader = optionalHeaderName(o.nonce_header, 'auth.nonce_header')
  // a timestamp or nonce signed but not sent could never be checked by the partner
  if (canonical.includes('timestamp') && timestampHeader === null) throw new ValidationError('auth.timestamp_header', 'is required when the canonical string holds the timestamp')
  if (canonical.includes('nonce') && nonceHeader === null) throw new ValidationError('auth.nonce_header', 'is required when the canonical string holds a nonce')
  const signatureHeader = headerName(o.signature_header, 'auth.signature_header')
  const secretHeaderValue = o.secret_header === undefined || o.secret_header === null ? null : objectHeader(o.secret_header, 'auth.secret_header')
  // each header is set once: a name used twice would go out twice, with different values
  const named: Array<[string, string | null]> = [['auth.timestamp_header', timestampHeader], ['auth.nonce_header', nonceHeader],
    ['auth.signature_header', signatureHeader], ['auth.secret_header.name', secretHeaderValue?.name ?? null]]
  const seen = new Set<string>()
  for (const [field, name] of named) {
    if (name === null) continue
    if (seen.has(name.toLowerCase())) throw new ValidationError(field, 'names a header another field of auth already sets')
    seen.add(name.toLowerCase())
  }
  return {
    type: 'hmac',
    preset: null,
    algorithm: o.algorithm === undefined ? 'sha256' : oneOf(o.algorithm, 'auth.algorithm', ['sha256', 'sha512']),
    encoding: o.encoding === undefined ? 'hex' : oneOf(o.encoding, 'auth.encoding', ['hex', 'HEX', 'base64']),
    canonical,
    separator: o.separator === undefined || o.separator === null ? '' : separator(o.separator),
    timestamp_unit: o.timestamp_unit === undefined ? 's' : oneOf(o.timestamp_unit, 'auth.timestamp_unit', ['s', 'ms']),
    timestamp_header: timestampHeader,
    nonce_header: nonceHeader,
    signature_header: signatureHeader,
    signature_prefix: o.signature_prefix === undefined || o.signature_prefix === null ? '' : headerText(o.signature_prefix, 'auth.signature_prefix', 256, true),
    secret_header: secretHeaderValue,
    max_body_bytes: maxBody,
  }
}

/** what goes between the signed parts: signed, never sent, so a line break is fine (no NUL) */
function separator (value: unknown): string {
  if (value === '') return ''
  const s = string(value, 'auth.separator', 16)
  if (/\p{Cs}/u.test(s)) throw new ValidationError('auth.separator', 'must not contain unpaired surrogates')
  return s
}

function jwt (o: Record<string, unknown>): JwtAuth {
  const preset = fromPreset(o, JWT_PRESETS)
  if (preset !== null) return preset
  const maxBody = maxBodyBytes(o.max_body_bytes)
  onlyFields(o, JWT_FIELDS, 'auth')
  const header = o.header === undefined || o.header === null ? { name: 'authorization', prefix: 'Bearer ' } : objectHeader(o.header, 'auth.header')
  const secretHeaderValue = o.secret_header === undefined || o.secret_header === null ? null : objectHeader(o.secret_header, 'auth.secret_header')
  if (secretHeaderValue !== null && secretHeaderValue.name.toLowerCase() === header.name.toLowerCase()) {
    throw new ValidationError('auth.secret_header.name', 'names the header the token goes in')
  }
  return {
    type: 'jwt',
    preset: null,
    algorithm: oneOf(o.algorithm, 'auth.algorithm', ['RS256', 'ES256']),
    header,
    secret_header: secretHeaderValue,
    expires_in_seconds: o.expires_in_seconds === undefined ? 30 : integer(o.expires_in_seconds, 'auth.expires_in_seconds', 1, 3600),
    path_claim: optionalClaim(o.path_claim, 'auth.path_claim'),
    nonce_claim: optionalClaim(o.nonce_claim, 'auth.nonce_claim'),
    body_hash_claim: optionalClaim(o.body_hash_claim, 'auth.body_hash_claim'),
    subject_is_secret: o.subject_is_secret === undefined ? false : boolean(o.subject_is_secret, 'auth.subject_is_secret'),
    claims: claims(o.claims),
    key_id: o.key_id === undefined || o.key_id === null ? null : headerText(o.key_id, 'auth.key_id', 256, false),
    max_body_bytes: maxBody,
  }
}

const CANONICAL_WORDS = new Set(['timestamp', 'nonce', 'method', 'path', 'body', 'secret'])

function canonicalPart (value: unknown, field: string): CanonicalPart {
  if (typeof value === 'string') {
    if (!CANONICAL_WORDS.has(value)) throw new ValidationError(field, `must be one of ${[...CANONICAL_WORDS].join(', ')}, {"header": name} or {"literal": text}`)
    return value as CanonicalPart
  }
  const o = object(value, field)
  if (o.header !== undefined) {
    onlyFields(o, new Set(['header']), field)
    const name = matching(o.header, child(field, 'header'), HEADER_NAME, 'a valid HTTP header name')
    // what the partner receives is signed: a header RelayKey strips or sets itself never arrives as the client sent it
    if (STRIPPED_HEADERS.has(name.toLowerCase())) throw new ValidationError(child(field, 'header'), 'is a header the proxy strips or replaces, so the partner could not check it')
    return { header: name }
  }
  onlyFields(o, new Set(['literal']), field)
  return { literal: headerText(o.literal, child(field, 'literal'), 256, true) }
}

function claims (value: unknown): Record<string, string | number | boolean> {
  if (value === undefined || value === null) return {}
  const o = object(value, 'auth.claims')
  const entries = Object.entries(o)
  if (entries.length > 32) throw new ValidationError('auth.claims', 'must have at most 32 members')
  const result: Record<string, string | number | boolean> = {}
  for (const [name, claim] of entries) {
    const field = child('auth.claims', name)
    if (!CLAIM_NAME.test(name) || name === '__proto__') throw new ValidationError(field, 'claim names are letters, digits, _ . : and -')
    if (typeof claim === 'string') result[name] = headerText(claim, field, 1024, true)
    else if (typeof claim === 'number' && Number.isFinite(claim)) result[name] = claim
    else if (typeof claim === 'boolean') result[name] = claim
    else throw new ValidationError(field, 'must be a string, a number or true/false')
  }
  return result
}

/** {name, prefix} of a header carrying a credential value */
function secretHeader (o: Record<string, unknown>, field: string): SecretHeader {
  const name = headerName(o.name, child(field, 'name'))
  const prefix = o.prefix === undefined || o.prefix === null ? '' : headerText(o.prefix, child(field, 'prefix'), 256, true)
  return { name, prefix }
}

function objectHeader (value: unknown, field: string): SecretHeader {
  const o = object(value, field)
  onlyFields(o, SECRET_HEADER_FIELDS, field)
  return secretHeader(o, field)
}

/** a header RelayKey may set: a valid name, none it strips or owns (kept as written; sent lowercase) */
function headerName (value: unknown, field: string): string {
  const name = matching(value, field, HEADER_NAME, 'a valid HTTP header name')
  const lower = name.toLowerCase()
  if (RESERVED_HEADERS.has(lower) || lower.startsWith('proxy-') || lower.startsWith('x-forwarded-')) {
    throw new ValidationError(field, 'is a header the proxy strips or controls')
  }
  return name
}

function optionalHeaderName (value: unknown, field: string): string | null {
  return value === undefined || value === null ? null : headerName(value, field)
}

function headerText (value: unknown, field: string, maxLength: number, emptyOk: boolean): string {
  if (emptyOk && value === '') return ''
  if (typeof value !== 'string') throw new ValidationError(field, 'must be a string')
  if (value.length > maxLength || !HEADER_VALUE.test(value)) throw new ValidationError(field, `must be at most ${maxLength} printable ASCII characters`)
  return string(value, field, maxLength)
}

function optionalText (value: unknown, field: string): string | null {
  return value === undefined || value === null ? null : headerText(value, field, 1024, false)
}

function optionalClaim (value: unknown, field: string): string | null {
  return value === undefined || value === null ? null : matching(value, field, CLAIM_NAME, 'a claim name (letters, digits, _ . : and -)')
}

function oneOf<T extends string> (value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new ValidationError(field, `must be ${allowed.map((a) => `'${a}'`).join(' or ')}`)
  }
  return value as T
}

function maxBodyBytes (value: unknown): number {
  return value === undefined || value === null ? DEFAULT_MAX_SIGNED_BODY_BYTES : integer(value, 'auth.max_body_bytes', 0, MAX_SIGNED_BODY_BYTES)
}

/** what a partner's auth needs of each credential, besides what is optional */
export function requiredParts (auth: PartnerAuth): { secret: boolean; parts: readonly string[] } {
  switch (auth.type) {
    case 'header': case 'bearer': case 'query': return { secret: true, parts: [] }
    case 'hmac': return { secret: auth.secret_header !== null || auth.canonical.includes('secret'), parts: ['signing_secret'] }
    case 'oauth2_client_credentials': return { secret: false, parts: ['client_id', 'client_secret'] }
    case 'mtls': return { secret: auth.header !== null, parts: ['client_cert', 'client_key'] }
    case 'jwt': return { secret: auth.secret_header !== null || auth.subject_is_secret, parts: ['private_key'] }
  }
}
