// Attempts after the first: whether a request may be sent again (replayable, the partner's
// retry settings, its retry budget, the deadline), how long to wait (Retry-After or full-jitter
// backoff), which credential it goes to (failover, a vendor quota spent on the new one), what
// each attempt tells the breakers, and timeouts.request_ms over all attempts.
import { errorSummary } from '../errors.js'
import type { Admission, AdmissionRequest } from '../limits/admission.js'
import { fullJitterDelayMs, retryAfterMs } from '../reliability/retry-rules.js'
import type { CredentialRoute } from './key-context.js'
import { failBeforeResponse, governanceFailed, refund } from './exchange-answers.js'
import { usableAfter, usableOrder } from './credential-choice.js'
import { PROBE_CREDENTIAL, releaseProbes, type ExchangeState } from './exchange-state.js'

/**
 * After a 401 dropped the access token the attempt carried: the same request goes once more,
 * at once, with a fresh one, before any breaker hears of it. Only when the body can be sent
 * again (none, or kept), the client is still there and the deadline leaves time.
 */
export function mayRefreshToken (x: ExchangeState): boolean {
  if (x.body === x.req) return false
  if (x.settled || x.res.destroyed || performance.now() >= x.deadline) return false
  x.tokenRefreshed = true
  releaseProbes(x)
  // a 401 is the partner saying it did nothing
  x.reached = false
  x.discarding = true
  x.drained = 0
  armDeadline(x)
  x.retryDelayMs = 0
  x.retryReason = 'token_refresh'
  return true
}

/** request_ms is over and the current attempt has no answer: it ends as a timeout */
export function deadlineReached (x: ExchangeState): void {
  x.deadlineTimer = null
  if (x.settled || x.res.headersSent || x.retryTimer !== null) return
  if (x.waitingForSigner) {
    x.waitingForSigner = false
    return failBeforeResponse(x, 'upstream_timeout', `no access token from partner ${x.partnerSlug} within request_ms`)
  }
  // a drain ends here and scheduleRetry turns it into the 504; an attempt still waiting
  // for a connection is aborted as soon as it gets one
  if (x.abort === null) x.deadlinePassed = true
  else x.abort(new DeadlineExceededError())
}

export function armDeadline (x: ExchangeState): void {
  if (x.deadlineTimer !== null) return
  x.deadlineTimer = setTimeout(deadlineReached, Math.max(1, x.deadline - performance.now()), x)
}

export function scheduleRetry (x: ExchangeState): void {
  x.discarding = false
  x.abort = null
  if (performance.now() >= x.deadline) return failBeforeResponse(x, 'upstream_timeout', 'the partner did not answer in time')
  x.deps.metrics.retried(x.facts.partner, x.retryReason)
  x.retryTimer = setTimeout(retryNow, x.retryDelayMs, x)
}

export function retryNow (x: ExchangeState): void {
  x.retryTimer = null
  if (x.settled) return
  const spent = x.quotaSpent
  const credential = x.credential!
  if (spent === null || spent.includes(credential.id)) return x.attemptNow()
  // no vendor request may be spent on an attempt that will not be sent
  if (performance.now() >= x.deadline) return failBeforeResponse(x, 'upstream_timeout', 'the partner did not answer in time')
  // Failing over spends a request of the new credential's vendor quota: the credentials in
  // order from the chosen one, minus those this request already used, and the store picks the
  // first with room, as at admission.
  const order = usableOrder(x.upstream!.orders![credential.index]!, Date.now(), spent)
  if (order.candidates.every((c) => c.quota === null)) return x.attemptNow()
  x.order = order
  const request: AdmissionRequest = { limits: [], budgets: [], cost: 0, credentials: order.candidates, now: Date.now(), groups: x.groups! }
  const local = x.deps.admission.admitLocally(request)
  if (local !== null) return failoverAdmitted(x, local)
  x.deps.admission.admit(request).then(
    (admission) => failoverAdmitted(x, admission),
    (err: unknown) => failoverAdmitted(x, null, err),
  )
}

/** the quota decision for a failover: null when the store did not answer */
export function failoverAdmitted (x: ExchangeState, admission: Admission | null, err?: unknown): void {
  if (x.settled) return
  if (admission !== null && admission.ok) {
    const credential = x.order!.routes[admission.credential === -1 ? 0 : admission.credential]!
    x.credential = credential
    x.quotaSpent!.push(credential.id)
    return x.attemptNow()
  }
  if (admission === null && x.context!.failOpen) {
    x.deps.logger.warn({ request_id: x.requestId, key_id: x.context!.keyId, err: errorSummary(err) }, 'limits store unavailable; policy fails open, failing over unmetered')
    return x.attemptNow()
  }
  x.settled = true
  refund(x)
  if (admission === null) return governanceFailed(x, err)
  x.limitRefused(admission, x.limitState)
}

/** another attempt is allowed by the request itself, the partner's settings and the clock */
export function mayRetry (x: ExchangeState): boolean {
  return x.replayable && !x.settled && x.attempt < x.upstream!.retry.maxAttempts &&
    !x.res.destroyed && performance.now() < x.deadline
}

/**
 * How long to wait before retrying an answered attempt, or -1 not to retry: the partner's
 * Retry-After when it asks for one no longer than max_delay_ms (longer: its answer passes
 * through), else full-jitter backoff; never past the deadline.
 */
export function retryDelay (x: ExchangeState, rawHeaders: Buffer[], now: number): number {
  const retry = x.upstream!.retry
  if (retry.respectRetryAfter) {
    const asked = retryAfterMs(rawHeaders, now)
    if (asked > retry.maxDelayMs) return -1
    if (asked >= 0) return performance.now() + asked < x.deadline ? asked : -1
  }
  return backoff(x)
}

export function backoff (x: ExchangeState): number {
  const retry = x.upstream!.retry
  const delay = fullJitterDelayMs(x.attempt, retry.baseDelayMs, retry.maxDelayMs)
  return performance.now() + delay < x.deadline ? delay : -1
}

/** tell both breakers what this attempt showed */
export function judgeAttempt (x: ExchangeState, verdict: 'succeeded' | 'failed' | 'rejected' | 'forbidden', now: number): void {
  const partner = x.upstream!.breaker
  const credential = x.credential!.breaker
  const probes = x.probes
  x.probes = 0
  if (verdict === 'failed') {
    // an earlier attempt's success (a 429 or 500 retried) is not this request's verdict
    x.partnerSucceeding = false
    partner.failed(now)
    credential.failed(now)
  } else if (verdict === 'rejected' || verdict === 'forbidden') {
    partner.succeeded(now) // the partner answered; it is x credential it refuses
    // from one key alone it proves nothing: a probe of the credential's it held ends undecided
    if (!credential.rejected(now, x.context!.keyId, verdict === 'rejected') && (probes & PROBE_CREDENTIAL) !== 0) credential.releaseProbe()
  } else {
    // the partner's success counts once its answer has come whole (report): an answer that
    // breaks off mid-body is a failure of the partner's instead. An open breaker (this is its
    // probe) closes at the head, so a long answer does not keep everyone else out; a break
    // later still counts as a failure
    if (partner.isOpen) partner.succeeded(now)
    else x.partnerSucceeding = true
    credential.succeeded(now)
  }
}

/**
 * The credential a retry goes to: the same one while its breaker lets requests through, else
 * another usable one; null when the partner's breaker (or every credential's) is now open.
 */
export function retryCredential (x: ExchangeState, now: number): CredentialRoute | null {
  if (x.upstream!.breaker.blocks(now)) return null
  return x.credential!.breaker.blocks(now) ? otherCredential(x, now) : x.credential
}

/** a usable credential other than the current attempt's, or null */
export function otherCredential (x: ExchangeState, now: number): CredentialRoute | null {
  return usableAfter(x.upstream!.routes, x.credential!, now)
}

export class DeadlineExceededError extends Error {
  readonly code = 'RELAYKEY_DEADLINE'
  constructor () {
    super('timeouts.request_ms passed before the partner answered')
    this.name = 'DeadlineExceededError'
  }
}
