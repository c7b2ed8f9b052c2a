// Control-plane records as the admin API shows them and the stores persist them.
// Field names are the wire names (snake_case) so no mapping layer sits between the two.
import type { PaymentSettings } from '../payments/payment-settings.js'

export interface RateLimit {
  requests: number
  per_seconds: number
  burst: number
}

export interface Budget {
  monthly: number
}

/** How a partner's requests carry their credential (docs/partners.md). */
export type PartnerAuth =
  | { type: 'header'; name: string; prefix: string }
  | { type: 'bearer' }
  | { type: 'query'; name: string }
  | HmacAuth
  | OAuth2ClientCredentialsAuth
  | MtlsAuth
  | JwtAuth

/** a header that carries the credential's `secret`, after a fixed prefix */
export interface SecretHeader {
  name: string
  prefix: string
}

/** one piece of an HMAC scheme's string to sign, in order */
export type CanonicalPart =
  | 'timestamp' | 'nonce' | 'method' | 'path' | 'body' | 'secret'
  | { header: string }
  | { literal: string }

/** every request signed with HMAC keyed by the credential's `signing_secret` */
export interface HmacAuth {
  type: 'hmac'
  /** a vendor's documented scheme the fields below were filled from ('sumsub'), or null */
  preset: string | null
  algorithm: 'sha256' | 'sha512'
  encoding: 'hex' | 'HEX' | 'base64'
  canonical: CanonicalPart[]
  separator: string
  timestamp_unit: 's' | 'ms'
  timestamp_header: string | null
  nonce_header: string | null
  signature_header: string
  signature_prefix: string
  /** the credential's `secret` (an app token, an API key) sent as is, or null */
  secret_header: SecretHeader | null
  /** bodies are read whole to be signed: larger ones are refused 413 */
  max_body_bytes: number
}

/** an access token fetched with the credential's client id and secret (RFC 6749 §4.4), cached */
export interface OAuth2ClientCredentialsAuth {
  type: 'oauth2_client_credentials'
  token_url: string
  scope: string | null
  audience: string | null
  /** how the client authenticates to the token URL: HTTP Basic or client_id/client_secret in the body */
  client_auth: 'basic' | 'body'
  /** the token URL may be on another origin than the partner's base URLs (an identity provider of its own) */
  token_url_other_origin: boolean
}

/** a client certificate per credential; optionally a header credential as well */
export interface MtlsAuth {
  type: 'mtls'
  header: SecretHeader | null
}

/** a short-lived JWT per request signed with the credential's `private_key` */
export interface JwtAuth {
  type: 'jwt'
  preset: string | null
  algorithm: 'RS256' | 'ES256'
  /** where the token goes (Authorization: Bearer …) */
  header: SecretHeader
  /** the credential's `secret` (an API key) sent as well, or null */
  secret_header: SecretHeader | null
  expires_in_seconds: number
  /** claim names for the request's path with query, a fresh nonce and the body's SHA-256 (hex); null leaves one out */
  path_claim: string | null
  nonce_claim: string | null
  body_hash_claim: string | null
  /** `sub` is the credential's `secret` (the API key) */
  subject_is_secret: boolean
  /** fixed claims added to every token */
  claims: Record<string, string | number | boolean>
  key_id: string | null
  max_body_bytes: number
}

/** HTTPS to the partner: a CA bundle (PEM) to trust besides the system's */
export interface PartnerTls {
  ca: StoredSecret
}

export interface Timeouts {
  connect_ms: number
  request_ms: number
}

export interface RetrySettings {
  max_attempts: number
  base_delay_ms: number
  max_delay_ms: number
  on_status: number[]
  respect_retry_after: boolean
  /** retries may add at most this percentage of the partner's requests (retry budget) */
  budget_percent: number
  /** retries always allowed per second per worker, whatever the request count */
  budget_min_per_second: number
}

export interface CircuitBreakerSettings {
  failure_threshold: number
  open_ms: number
  /** requests in flight to the partner at once, per node; beyond it 503 circuit_open */
  max_in_flight: number
}

// The settings a partner has when nothing says otherwise. The stores read every partner through
// them, so a partner stored before a setting existed gets its default.
export function defaultTimeouts (): Timeouts {
  return { connect_ms: 5000, request_ms: 30000 }
}

export function defaultRetry (): RetrySettings {
  return { max_attempts: 2, base_delay_ms: 100, max_delay_ms: 2000, on_status: [502, 503, 504], respect_retry_after: true, budget_percent: 20, budget_min_per_second: 3 }
}

export function defaultCircuitBreaker (): CircuitBreakerSettings {
  return { failure_threshold: 5, open_ms: 30000, max_in_flight: 1000 }
}

export interface PartnerInput {
  slug: string
  /** environment name → absolute http(s) base URL */
  base_urls: Record<string, string>
  auth: PartnerAuth
  /** null: the system's trusted CAs only */
  tls: PartnerTls | null
  timeouts: Timeouts
  retry: RetrySettings
  circuit_breaker: CircuitBreakerSettings
}

export interface Partner extends PartnerInput {
  id: string
  created_at: string
  updated_at: string
}

/** A secret as the admin API accepts it. */
export type SecretInput =
  | { provider: 'env'; ref: string }
  | { provider: 'file'; ref: string }
  | { provider: 'inline'; value: string }

/** A secret as it is stored: inline values only ever as AES-256-GCM ciphertext. */
export type StoredSecret =
  | { provider: 'env'; ref: string }
  | { provider: 'file'; ref: string }
  | { provider: 'inline'; ciphertext: string }

/** A credential's secret parts besides `secret`, each needed by one kind of partner auth. */
export const SECRET_PARTS = ['signing_secret', 'client_id', 'client_secret', 'client_cert', 'client_key', 'private_key'] as const
export type SecretPart = typeof SECRET_PARTS[number]
export type SecretParts = Partial<Record<SecretPart, StoredSecret>>

export interface CredentialInput {
  name: string
  environment: string
  /** null only where the partner's auth needs none (OAuth2 client credentials, mTLS alone) */
  secret: StoredSecret | null
  /** the other parts, by name; absent ones are not set */
  secret_parts: SecretParts
  weight: number
  rate_limit: RateLimit | null
}

export interface Credential extends CredentialInput {
  id: string
  partner_id: string
  created_at: string
  updated_at: string
}

export interface CostRule {
  method: string
  path: string
  cost: number
}

export interface AllowRule {
  method: string
  path: string
}

export interface PolicyInput {
  name: string
  rate_limit: RateLimit | null
  customer_rate_limit: RateLimit | null
  budget: Budget | null
  customer_budget: Budget | null
  costs: CostRule[]
  /** null: everything allowed */
  allow: AllowRule[] | null
  /** x402 settings (docs/payments.md); null: requests are not paid for */
  payment: PaymentSettings | null
  /**
   * What the data plane does when Redis or SQLite, needed for a rate-limit or budget decision,
   * does not answer in time. 'deny' (the default) fails closed: 503 governance_unavailable.
   * 'allow' fails open: the request goes through unmetered, so for as long as the outage lasts
   * this policy's rate limits and budgets are NOT enforced and the spend is not counted.
   */
  on_governance_failure: GovernanceFailureMode
  /** requests of one key in flight at once on a node; null: no cap */
  max_in_flight: number | null
  /** the same for all keys of one customer together; null: no cap */
  customer_max_in_flight: number | null
}

/** See PolicyInput.on_governance_failure. */
export type GovernanceFailureMode = 'deny' | 'allow'

export interface Policy extends PolicyInput {
  id: string
  created_at: string
  updated_at: string
}

export interface BindingInput {
  policy_id: string
  partner_id: string
  /** credential ids; null = every credential of the partner for the key's environment */
  credentials: string[] | null
}

export interface Binding extends BindingInput {
  id: string
  created_at: string
}

export interface KeyInput {
  name: string
  policy_id: string
  environment: string
  customer: string | null
  team: string | null
  service: string | null
  expires_at: string | null
}

export interface VirtualKey extends KeyInput {
  id: string
  /** first characters of the raw key, enough to recognise it in a list */
  prefix: string
  revoked_at: string | null
  created_at: string
  updated_at: string
}

export type KeyPatch = Partial<Pick<KeyInput, 'name' | 'policy_id' | 'customer' | 'team' | 'service' | 'expires_at'>>

/** Everything the data plane needs to decide about one key, loaded in one go on a cache miss. */
export interface ResolvedKeyRecord {
  key: VirtualKey
  /** when this particular hash stops working (set on the old hash by a rotation); null = no limit */
  hash_expires_at: string | null
  policy: Policy
  bindings: Array<{ binding: Binding; partner: Partner; credentials: Credential[] }>
}
