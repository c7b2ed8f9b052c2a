// A key's resolved, compiled view of the control plane: built once on a cache miss, frozen,
// then read by every request with that key. Nothing here is parsed again per request. What
// depends only on the key's policy and environment (the compiled policy, the partner routes) is
// built by compilePolicyRoutes and shared by every such key (shared-policy-routes.ts).
import type { Pool } from 'undici'
import type { Logger } from 'pino'
import type { Credential, Partner, Policy, ResolvedKeyRecord } from '../store/model.js'
import type { SecretResolver } from '../secrets/secret-resolver.js'
import { compileEndpoint, type CompiledEndpoint } from '../http/endpoint-pattern.js'
import { WeightedRoundRobin } from './weighted-round-robin.js'
import type { UpstreamPools } from '../http/upstream-pools.js'
import type { CredentialCandidate } from '../limits/admission.js'
import { compileLimits, rateLimitSpec, type CompiledLimits } from '../limits/compile-limits.js'
import type { CircuitBreaker } from '../reliability/circuit-breaker.js'
import type { PartnerGuards, PartnerReliability, RetryPlan } from '../reliability/partner-reliability.js'
import type { CompiledPayment } from '../payments/compile-payment.js'
import type { PaymentServices } from '../payments/payment-services.js'
import { compileCredentialAuth, type CredentialAuth } from '../partner-auth/compile-credential-auth.js'
import type { AttemptSigner } from '../partner-auth/attempt-signer.js'
import type { TokenSources } from '../partner-auth/token-sources.js'

export interface CredentialRoute {
  /** position in UpstreamTarget.orders */
  readonly index: number
  readonly id: string
  readonly name: string
  /** header to inject (lowercase), or null (query auth, or a signer's headers) */
  readonly headerName: string | null
  readonly headerValue: string
  /** `name=value`, already encoded, for query auth */
  readonly queryPair: string | null
  /** the secret parts as they may come back in a response header (as is, and URL-encoded): redacted there */
  readonly secretForms: readonly string[]
  /** signs each attempt (hmac, jwt, oauth2_client_credentials); null for the static schemes */
  readonly signer: AttemptSigner | null
  /** the credential's own connections (mTLS), else null: the partner's pool */
  readonly pool: Pool | null
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
  /** lowercase names of the headers a signer sets (client's own dropped); null without a signer */
  readonly signerHeaders: ReadonlySet<string> | null
  /** the body is signed: read whole before the first attempt, refused 413 above this; -1: streamed */
  readonly signedBodyLimit: number
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
  /** the partner's place in the policy's bindings: KeyContext.groups[index] is the key's for it */
  readonly index: number
  readonly partnerId: string
  readonly slug: string
  /** null: the partner has no base URL or no usable credential for the key's environment */
  readonly upstream: UpstreamTarget | null
  /**
   * with no upstream although the partner has a base URL for the key's environment: why it cannot
   * be used (no credential, none usable, its CA unreadable), answered 502 partner_misconfigured;
   * null otherwise (no base URL: 403 environment_not_allowed)
   */
  readonly misconfigured: string | null
}

/** what every key of one policy in one environment shares (shared-policy-routes.ts) */
export interface PolicyRoutes {
  readonly policy: CompiledPolicy
  /** by partner slug; a route's `index` is its place in `partnerIds` */
  readonly routes: ReadonlyMap<string, PartnerRoute>
  /** the bound partners' ids, in binding order */
  readonly partnerIds: readonly string[]
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
  /** shared by every key of the policy in this environment */
  readonly routes: ReadonlyMap<string, PartnerRoute>
  readonly partnerIds: readonly string[]
  /** by route index: consistency groups of this key's counters and that partner's quotas (see AdmissionRequest) */
  readonly groups: ReadonlyArray<{ readonly owner: string; readonly partner: string }>
}

export interface CompileDeps {
  secrets: SecretResolver
  pools: UpstreamPools
  tokens: TokenSources
  reliability: PartnerReliability
  payments: PaymentServices
  logger: Logger
}

/** the key's context on routes built for its policy and environment */
export function keyContextOf (record: ResolvedKeyRecord, shared: PolicyRoutes): KeyContext {
  const { key, policy } = record
  const limits = compileLimits(policy, key.id, key.customer)
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
    policy: shared.policy,
    limits,
    failOpen: policy.on_governance_failure === 'allow',
    keySlot: policy.max_in_flight === null ? null : `key:${key.id}`,
    keyMaxInFlight: policy.max_in_flight ?? 0,
    customerSlot: policy.customer_max_in_flight === null || key.customer === null ? null : `customer:${key.customer}`,
    customerMaxInFlight: policy.customer_max_in_flight ?? 0,
    routes: shared.routes,
    partnerIds: shared.partnerIds,
    groups: Object.freeze(shared.partnerIds.map((partner) => Object.freeze({ owner: limits.owner, partner }))),
  })
}

/** what every key of `record`'s policy in its environment shares: the compiled policy and the partner routes */
export async function compilePolicyRoutes (record: ResolvedKeyRecord, deps: CompileDeps): Promise<PolicyRoutes> {
  const { key, policy } = record
  const routes = new Map<string, PartnerRoute>()
  for (const [index, { binding, partner, credentials }] of record.bindings.entries()) {
    const baseUrl = partner.base_urls[key.environment]
    const bound = credentials.filter((c) => c.environment === key.environment &&
      (binding.credentials === null || binding.credentials.includes(c.id)))
    let upstream: UpstreamTarget | null = null
    let misconfigured: string | null = null
    const ca = await partnerCa(partner, deps)
    if (baseUrl !== undefined && bound.length > 0 && ca !== undefined) {
      const routesForCredentials = await credentialRoutes(bound, partner, ca, deps)
      if (routesForCredentials.length > 0) {
        const byId = new Map(bound.map((c) => [c.id, c]))
        const url = new URL(baseUrl)
        upstream = Object.freeze({
          origin: url.origin,
          basePath: url.pathname.replace(/\/+$/, ''),
          pool: deps.pools.get(url.origin, { connectTimeoutMs: partner.timeouts.connect_ms, ca }),
          requestTimeoutMs: partner.timeouts.request_ms,
          credentialHeader: routesForCredentials[0]!.headerName,
          signerHeaders: routesForCredentials[0]!.signer?.ownedHeaders ?? null,
          signedBodyLimit: routesForCredentials[0]!.signer?.signsBody === true ? routesForCredentials[0]!.signer.maxBodyBytes : -1,
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
    if (upstream === null && baseUrl !== undefined) {
      misconfigured = ca === undefined ? 'its CA bundle (tls.ca) cannot be read'
        : bound.length === 0 ? `it has no credential for environment ${key.environment}${binding.credentials === null ? '' : ' among those the binding names'}`
          : `none of its credentials for environment ${key.environment} is usable (see the error log: credential unusable)`
    }
    routes.set(partner.slug, Object.freeze({
      index,
      partnerId: partner.id,
      slug: partner.slug,
      upstream,
      misconfigured,
    }))
  }
  return Object.freeze({
    policy: Object.freeze({
      id: policy.id,
      name: policy.name,
      allow: policy.allow === null ? null : Object.freeze(policy.allow.map((r) => compileEndpoint(r.method, r.path))),
      payment: policy.payment === null ? null : deps.payments.compile(policy.payment),
      source: policy,
    }),
    routes,
    partnerIds: Object.freeze(record.bindings.map((b) => b.partner.id)),
  })
}

async function credentialRoutes (credentials: Credential[], partner: Partner, ca: string | null, deps: CompileDeps): Promise<CredentialRoute[]> {
  const out: CredentialRoute[] = []
  for (const credential of credentials) {
    let auth: CredentialAuth
    try {
      auth = await compileCredentialAuth(partner, credential, ca, deps)
    } catch (err) {
      // An unusable credential is left out of rotation; the message never holds the secret. A
      // warning, once per build of the policy's routes: the primary's configuration check logs
      // each problem once at error level (health/misconfiguration-monitor.ts).
      deps.logger.warn({ credential_id: credential.id, partner: partner.slug, err: (err as Error).message }, 'credential unusable; left out of rotation')
      continue
    }
    out.push(Object.freeze({
      index: out.length,
      id: credential.id,
      name: credential.name,
      ...auth,
      secretForms: Object.freeze(auth.secretForms),
      breaker: deps.reliability.credentialBreaker(credential.id, partner.id, partner.slug, partner.circuit_breaker),
    }))
  }
  return out
}

/** the partner's own CA bundle; undefined when it is set but cannot be read (nothing is sent then) */
async function partnerCa (partner: Partner, deps: CompileDeps): Promise<string | null | undefined> {
  if (partner.tls === null) return null
  try {
    return await deps.secrets.resolve(partner.tls.ca)
  } catch (err) {
    deps.logger.warn({ partner: partner.slug, err: (err as Error).message }, 'partner CA bundle (tls.ca) unavailable; nothing is sent to this partner')
    return undefined
  }
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
