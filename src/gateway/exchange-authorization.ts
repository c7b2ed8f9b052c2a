// Authorization: the key (known, not revoked or expired), the path, the partner its policy
// binds, the environment's base URL and credentials, the policy's allow list, a signed body's
// size, the breakers and concurrency caps — every refusal before anything is spent — then the
// payment read and the admission decision asked for.
import type { AdmissionRequest, CredentialCandidate } from '../limits/admission.js'
import { costOf } from '../limits/compile-limits.js'
import { priceFor } from '../payments/compile-payment.js'
import { findEndpoint } from '../http/endpoint-pattern.js'
import type { KeyContext } from './key-context.js'
import { PaidExchange } from './paid-exchange.js'
import { circuitOpen, governanceFailed, refuse } from './exchange-answers.js'
import { soonestRetryMs, usableCredential, usableOrder } from './credential-choice.js'
import { admissionFailed, admitted, forward } from './exchange-admission.js'
import { paymentRequired } from './exchange-payment.js'
import { RETRY_SOON, type ExchangeState } from './exchange-state.js'

const NO_CANDIDATES: readonly CredentialCandidate[] = Object.freeze([])

export function authorize (x: ExchangeState, context: KeyContext | null): void {
  if (context === null) return refuse(x, 'invalid_key', 'unknown virtual key')
  x.facts.context = context
  if (context.revoked) return refuse(x, 'key_revoked', 'this virtual key has been revoked')
  const now = x.facts.ts
  if (context.expiresAt <= now) return refuse(x, 'key_expired', 'this virtual key has expired')
  if (context.hashExpiresAt <= now) return refuse(x, 'key_expired', 'this virtual key was rotated and its grace period is over')
  x.context = context
  if (x.path === null) return refuse(x, 'invalid_path', 'the path must stay under the partner\'s base URL')
  // RFC 9112 has no fragment in a request target, and Node's parser lets one through; a '#'
  // in the path is refused above, and in the query it would hide a query-auth credential
  // appended after it from the partner, which would then refuse the credential
  if (x.query.indexOf('#') !== -1) return refuse(x, 'bad_request', 'the request target may not contain "#"')

  const route = context.routes.get(x.partnerSlug)
  if (route === undefined) {
    x.deps.partners.exists(x.partnerSlug).then(
      (exists) => {
        if (!exists) return refuse(x, 'unknown_partner', `no partner ${x.partnerSlug}`)
        x.facts.partner = x.partnerSlug
        refuse(x, 'partner_not_allowed', `this key's policy has no binding to partner ${x.partnerSlug}`)
      },
      (err: unknown) => governanceFailed(x, err),
    )
    return
  }
  x.facts.partner = route.slug
  x.groups = context.groups[route.index]!
  const upstream = route.upstream
  if (upstream === null) {
    // the operator's configuration, not the key's rules: a 5xx the client can report, naming why
    if (route.misconfigured !== null) return refuse(x, 'partner_misconfigured', `partner ${route.slug} cannot be called in environment ${context.environment}: ${route.misconfigured}`)
    return refuse(x, 'environment_not_allowed', `partner ${route.slug} has no base URL for environment ${context.environment}`)
  }
  const method = x.req.method!
  const allow = context.policy.allow
  if (allow !== null && findEndpoint(allow, method, x.path!.match) === -1) {
    return refuse(x, 'endpoint_not_allowed', `${method} ${x.path!.match} is not allowed by policy ${context.policy.name}`)
  }
  x.upstream = upstream
  // a body that must be signed is read whole: one over the partner's bound is refused before
  // anything is charged (a chunked one, once it passes the bound while being read)
  if (upstream.signedBodyLimit >= 0 && x.contentLength > upstream.signedBodyLimit) {
    return refuse(x, 'payload_too_large', `partner ${route.slug} signs request bodies, which may be at most ${upstream.signedBodyLimit} bytes`)
  }
  // Breakers and the concurrency gate come before limits: a request that will not be sent
  // must not spend the key's rate limit or budget.
  if (upstream.breaker.blocks(now)) {
    return circuitOpen(x, upstream.breaker.retryAfterMs(now), `partner ${route.slug} is failing; RelayKey stopped sending to it for a while`)
  }
  const preferred = usableCredential(upstream, now)
  if (preferred === null) {
    return circuitOpen(x, soonestRetryMs(upstream.routes, now), `every credential of partner ${route.slug} is failing`)
  }
  // a full cap refuses before any limit is spent; the slot itself is taken when the first
  // attempt is dispatched (startAttempt), so a client still sending its body holds none
  if (upstream.guards.gate.full()) return refuse(x, 'circuit_open', `partner ${route.slug} has too many requests in flight`, RETRY_SOON)
  if (!enterKeySlots(x, context)) return
  const payment = context.policy.payment
  if (payment !== null) {
    // read before any limit is spent: a request without a usable payment costs nothing
    const price = priceFor(payment, method, x.path!.match)
    if (price !== null) {
      const paid = new PaidExchange(x.deps.payments, x.deps.logger, payment, price, x.deps.payments.resourceUrl(x.host, x.req.url!))
      x.paid = paid
      const reason = paid.read(x.paymentSignature, x.xPayment)
      if (reason !== null) return paymentRequired(x, reason)
    }
  }
  const limits = context.limits
  const cost = costOf(limits.costs, method, x.path!.match)
  x.facts.cost = cost
  if (limits.limits.length === 0 && limits.budgets.length === 0 && upstream.orders === null) {
    return forward(x, preferred)
  }
  // Every limit, budget and vendor quota is decided together: from this worker's leases when
  // they cover the request, else by one store round trip.
  x.preferred = preferred
  x.order = upstream.orders === null ? null : usableOrder(upstream.orders[preferred.index]!, now)
  const request: AdmissionRequest = {
    limits: limits.limits,
    budgets: limits.budgets,
    cost,
    credentials: x.order === null ? NO_CANDIDATES : x.order.candidates,
    now,
    groups: x.groups,
  }
  const local = x.deps.admission.admitLocally(request)
  if (local !== null) return admitted(x, local)
  x.deps.admission.admit(request).then(
    (admission) => admitted(x, admission),
    (err: unknown) => admissionFailed(x, err),
  )
}

/**
 * the policy's max_in_flight for this key and for its customer: a slot of each, held until the
 * exchange ends (report), or 429 concurrency_limited before any limit is spent
 */
export function enterKeySlots (x: ExchangeState, context: KeyContext): boolean {
  const counts = x.deps.concurrency
  if (context.keySlot !== null) {
    if (!counts.tryEnter(context.keySlot, context.keyMaxInFlight)) {
      refuse(x, 'concurrency_limited', `this key already has its max_in_flight (${context.keyMaxInFlight}) requests in flight`, RETRY_SOON)
      return false
    }
    x.keySlot = context.keySlot
  }
  if (context.customerSlot !== null) {
    if (!counts.tryEnter(context.customerSlot, context.customerMaxInFlight)) {
      refuse(x, 'concurrency_limited', `customer ${context.customer} already has its customer_max_in_flight (${context.customerMaxInFlight}) requests in flight`, RETRY_SOON)
      return false
    }
    x.customerSlot = context.customerSlot
  }
  return true
}
