// A key's resolved, compiled view of the control plane: built once on a cache miss, frozen,
// then read by every request with that key. Nothing here is parsed again per request.
import type { Pool } from 'undici'
import type { Logger } from 'pino'
import type { Credential, Partner, Policy, ResolvedKeyRecord } from '../store/model.js'
import type { SecretResolver } from '../secrets/secret-resolver.js'
import { compileEndpoint, type CompiledEndpoint } from './endpoint-pattern.js'
import { WeightedRoundRobin } from './weighted-round-robin.js'
import type { UpstreamPools } from './upstream-pools.js'
import type { CredentialCandidate } from '../limits/admission.js'
import { compileLimits, rateLimitSpec, type CompiledLimits } from '../limits/compile-limits.js'
import type { CircuitBreaker } from '../reliability/circuit-breaker.js'
import type { PartnerGuards, PartnerReliability, RetryPlan } from '../reliability/partner-reliability.js'
import type { CompiledPayment } from '../payments/compile-payment.js'
import type { PaymentServices } from '../payments/payment-services.js'

export interface CredentialRoute {
  /** position in UpstreamTarget.orders */
  readonly index: number
  readonly id: string
  readonly name: string
  /** header to inject (lowercase), or null for query auth */
  readonly headerName: string | null
  readonly headerValue: string
  /** `name=value`, already encoded, for query auth */
  readonly queryPair: string | null
  /** the secret as it may come back in a response header (as is, and URL-encoded): redacted there */
  readonly secretForms: readonly string[]
  /** shared by every key using this credential, outlives the context */
  readonly breaker: CircuitBreaker
}

export interface UpstreamTarget {
  readonly origin: string
  /** base URL path without a trailing slash ('' for the root) */
  readonly basePath: string
  readonly pool: Pool
  readonly requestTimeoutMs: number
  /** lowercased name of the client header that must never pass (same as the credential's) */
  readonly credentialHeader: string | null
  /** query parameter the credential goes in, stripped from the client's query */
  readonly credentialQueryParam: string | null
  readonly credentials: WeightedRoundRobin<CredentialRoute>
  /** every usable credential, by index: the fallbacks when the preferred one's breaker is open */
  readonly routes: readonly CredentialRoute[]
  readonly retry: RetryPlan
  /** the breaker of this partner environment */
  readonly breaker: CircuitBreaker
  /** the partner's retry budget and concurrency gate */
  readonly guards: PartnerGuards
  /**
   * When any credential has a vendor quota: for each credential (by index), every credential
   * in the order to try them with that one preferred. null: no quotas, nothing to check.
   */
  readonly orders: ReadonlyArray<CredentialOrder> | null
}

export interface CredentialOrder {
  readonly routes: readonly CredentialRoute[]
  readonly candidates: readonly CredentialCandidate[]
}

export interface PartnerRoute {
  readonly partnerId: string
  readonly slug: string
  /** consistency groups of this key's counters and this partner's quotas (see AdmissionRequest) */
  readonly groups: { readonly owner: string; readonly partner: string }
  /** null: the partner has no base URL or no usable credential for the key's environment */
  readonly upstream: UpstreamTarget | null
}

export interface CompiledPolicy {
  readonly id: string
  readonly name: string
  /** null: every endpoint allowed */
  readonly allow: readonly CompiledEndpoint[] | null
  /** x402: null when the policy's requests are not paid for */
  readonly payment: CompiledPayment | null
  readonly source: Policy
}

export interface KeyContext {
  readonly keyId: string
  readonly name: string
  readonly environment: string
  readonly customer: string | null
  readonly team: string | null
  readonly service: string | null
  readonly revoked: boolean
  /** epoch ms; Infinity when the key does not expire */
  readonly expiresAt: number
  /** epoch ms after which this particular (rotated-out) key stops working; Infinity if never */
  readonly hashExpiresAt: number
  readonly policy: CompiledPolicy
  readonly limits: CompiledLimits
  /** fail open (forward unmetered) when the limits store does not answer */
  readonly failOpen: boolean
  /**
   * the policy's max_in_flight: slot ids and caps for this key and its customer, or null where
   * the policy sets none (or the key has no customer)
   */
  readonly keySlot: string | null
  readonly keyMaxInFlight: number
  readonly customerSlot: string | null
  readonly customerMaxInFlight: number
  readonly routes: ReadonlyMap<string, PartnerRoute>
  readonly partnerIds: readonly string[]
}

export interface CompileDeps {
  secrets: SecretResolver
  pools: UpstreamPools
  reliability: PartnerReliability
  payments: PaymentServices
  logger: Logger
}

export async function compileKeyContext (record: ResolvedKeyRecord, deps: CompileDeps): Promise<KeyContext> {
  const { key, policy } = record
  const routes = new Map<string, PartnerRoute>()
  const limits = compileLimits(policy, key.id, key.customer)
  for (const { binding, partner, credentials } of record.bindings) {
    const baseUrl = partner.base_urls[key.environment]
    const bound = credentials.filter((c) => c.environment === key.environment &&
      (binding.credentials === null || binding.credentials.includes(c.id)))
    let upstream: UpstreamTarget | null = null
    if (baseUrl !== undefined && bound.length > 0) {
      const routesForCredentials = await credentialRoutes(bound, partner, deps)
      if (routesForCredentials.length > 0) {
        const byId = new Map(bound.map((c) => [c.id, c]))
        const url = new URL(baseUrl)
        upstream = Object.freeze({
          origin: url.origin,
          basePath: url.pathname.replace(/\/+$/, ''),
          pool: deps.pools.get(url.origin, { connectTimeoutMs: partner.timeouts.connect_ms }),
          requestTimeoutMs: partner.timeouts.request_ms,
          credentialHeader: partner.auth.type === 'header' ? partner.auth.name.toLowerCase() : partner.auth.type === 'bearer' ? 'authorization' : null,
          credentialQueryParam: partner.auth.type === 'query' ? partner.auth.name : null,
          credentials: new WeightedRoundRobin(routesForCredentials, routesForCredentials.map((r) => byId.get(r.id)!.weight)),
          routes: Object.freeze(routesForCredentials),
          retry: deps.reliability.retryPlan(partner.retry),
          breaker: deps.reliability.environmentBreaker(partner.id, key.environment, partner.slug, partner.circuit_breaker),
          guards: deps.reliability.partner(partner.id, partner.slug, partner.retry, partner.circuit_breaker),
          orders: credentialOrders(routesForCredentials, byId),
        })
      }
    }
    routes.set(partner.slug, Object.freeze({
      partnerId: partner.id,
      slug: partner.slug,
      groups: Object.freeze({ owner: limits.owner, partner: partner.id }),
      upstream,
    }))
  }
  return Object.freeze({
    keyId: key.id,
    name: key.name,
    environment: key.environment,
    customer: key.customer,
    team: key.team,
    service: key.service,
    revoked: key.revoked_at !== null,
    expiresAt: key.expires_at === null ? Infinity : Date.parse(key.expires_at),
    hashExpiresAt: record.hash_expires_at === null ? Infinity : Date.parse(record.hash_expires_at),
    policy: Object.freeze({
      id: policy.id,
      name: policy.name,
      allow: policy.allow === null ? null : Object.freeze(policy.allow.map((r) => compileEndpoint(r.method, r.path))),
      payment: policy.payment === null ? null : deps.payments.compile(policy.payment),
      source: policy,
    }),
    limits,
    failOpen: policy.on_governance_failure === 'allow',
    keySlot: policy.max_in_flight === null ? null : `key:${key.id}`,
    keyMaxInFlight: policy.max_in_flight ?? 0,
    customerSlot: policy.customer_max_in_flight === null || key.customer === null ? null : `customer:${key.customer}`,
    customerMaxInFlight: policy.customer_max_in_flight ?? 0,
    routes,
    partnerIds: Object.freeze(record.bindings.map((b) => b.partner.id)),
  })
}

/** what node:http and undici accept in a header value (RFC 9110 field-value, obs-text included) */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
/** what encodeURIComponent throws on */
const UNPAIRED_SURROGATE = /\p{Cs}/u

async function credentialRoutes (credentials: Credential[], partner: Partner, deps: CompileDeps): Promise<CredentialRoute[]> {
  const auth = partner.auth
  const out: CredentialRoute[] = []
  for (const credential of credentials) {
    let secret: string
    try {
      secret = await deps.secrets.resolve(credential.secret)
    } catch (err) {
      // An unusable credential is left out of rotation; the message never holds the secret.
      deps.logger.error({ credential_id: credential.id, err: (err as Error).message }, 'credential secret unavailable')
      continue
    }
    // an env or file secret, or one stored before the partner's auth type changed, that its
    // auth cannot carry would fail every request at the HTTP client and open the breakers
    if (auth.type === 'query' ? UNPAIRED_SURROGATE.test(secret) : !HEADER_VALUE.test(secret)) {
      deps.logger.error({ credential_id: credential.id }, `credential secret has characters ${auth.type === 'query' ? 'a query string' : 'an HTTP header'} cannot carry; left out of rotation`)
      continue
    }
    out.push(Object.freeze({
      index: out.length,
      id: credential.id,
      name: credential.name,
      headerName: auth.type === 'header' ? auth.name.toLowerCase() : auth.type === 'bearer' ? 'authorization' : null,
      headerValue: auth.type === 'header' ? auth.prefix + secret : auth.type === 'bearer' ? `Bearer ${secret}` : '',
      queryPair: auth.type === 'query' ? `${encodeURIComponent(auth.name)}=${encodeURIComponent(secret)}` : null,
      secretForms: secretForms(secret),
      breaker: deps.reliability.credentialBreaker(credential.id, partner.id, partner.slug, partner.circuit_breaker),
    }))
  }
  return out
}

/**
 * The secret, and its URL-encoded form when that differs. A secret shorter than 8 characters is
 * left out: replacing it would mangle unrelated header values, and nothing that short is safe
 * to share a credential with anyway.
 */
function secretForms (secret: string): string[] {
  if (secret.length < 8) return []
  const encoded = encodeURIComponent(secret)
  return encoded === secret ? [secret] : [secret, encoded]
}

function credentialOrders (routes: CredentialRoute[], byId: Map<string, Credential>): CredentialOrder[] | null {
  const candidates = routes.map((r): CredentialCandidate => {
    const limit = byId.get(r.id)!.rate_limit
    return Object.freeze({ id: r.id, quota: limit === null ? null : rateLimitSpec('credential', r.id, limit) })
  })
  if (candidates.every((c) => c.quota === null)) return null
  return routes.map((_, first) => {
    const order = routes.map((__, i) => (first + i) % routes.length)
    return Object.freeze({
      routes: Object.freeze(order.map((i) => routes[i]!)),
      candidates: Object.freeze(order.map((i) => candidates[i]!)),
    })
  })
}
