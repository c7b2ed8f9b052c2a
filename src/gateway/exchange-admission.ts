// Admission: what the key's limits, budgets and the partner's vendor quotas decided (from this
// worker's leases, or one store round trip), a 429 when something is spent, fail-open where
// the policy says so, and the admitted request handed on to its payment and first attempt.
import { errorSummary } from '../errors.js'
import type { Admission, LimitState } from '../limits/admission.js'
import { pushRateLimitHeaders } from '../limits/rate-limit-headers.js'
import type { CredentialRoute } from './key-context.js'
import { governanceFailed, refuse } from './exchange-answers.js'
import { send } from './exchange-client-flow.js'
import { paymentChecked } from './exchange-payment.js'
import type { ExchangeState } from './exchange-state.js'

export function admitted (x: ExchangeState, admission: Admission): void {
  if (!admission.ok) {
    x.facts.cost = 0
    return limitRefused(x, admission, admission.tightest)
  }
  x.limitState = admission.tightest
  x.reservation = admission.reservation
  const credential = admission.credential === -1 ? x.preferred! : x.order!.routes[admission.credential]!
  if (x.order !== null) x.quotaSpent = [credential.id]
  forward(x, credential)
}

export function admissionFailed (x: ExchangeState, err: unknown): void {
  if (x.context!.failOpen) {
    x.deps.logger.warn({ request_id: x.requestId, key_id: x.context!.keyId, err: errorSummary(err) }, 'limits store unavailable; policy fails open, forwarding unmetered')
    return forward(x, x.preferred!)
  }
  governanceFailed(x, err)
}

/** admitted: a paid request's payment is claimed and verified first */
export function forward (x: ExchangeState, credential: CredentialRoute): void {
  x.credential = credential
  if (x.paid === null) return send(x)
  x.paid.claimAndVerify().then(
    (refusal) => paymentChecked(x, refusal),
    (err: unknown) => paymentChecked(x, { code: 'upstream_error', reason: errorSummary(err).type }),
  )
}

/** 429 for a spent limit, budget or quota, with Retry-After and the RateLimit headers of `state` */
export function limitRefused (x: ExchangeState, refusal: Extract<Admission, { ok: false }>, state: LimitState | null): void {
  const headers = ['retry-after', String(refusal.retryAfterSeconds)]
  pushRateLimitHeaders(headers, x.context!.limits.policyHeader, state)
  refuse(x, refusal.code, refusalMessage(refusal.code, refusal.name), headers)
}

function refusalMessage (code: Extract<Admission, { ok: false }>['code'], name: string): string {
  switch (code) {
    case 'rate_limited': return `the ${name} rate limit is reached`
    case 'budget_exceeded': return `the ${name} monthly budget is spent`
    case 'upstream_quota_exceeded': return 'the partner quota of every usable credential is spent'
  }
}
