// The worker's reliability state for every partner it has sent to: circuit breakers (per
// partner environment and per credential), retry budgets and concurrency gates (per partner).
// Key contexts are rebuilt on every cache refresh; this state must outlive them, so contexts
// borrow these objects by id and a refresh only updates their settings.
//
// State is per worker, deliberately: a breaker decision needs no IPC or Redis round trip on the
// hot path, and it reacts to what this process sees. With W workers, a dead partner costs up to
// W × failure_threshold failed requests before every worker has opened, and W probes per open_ms
// (docs/reliability.md).
import type { CircuitBreakerSettings, RetrySettings } from '../store/model.js'
import { CircuitBreaker, type BreakerSettings } from './circuit-breaker.js'
import { InFlightGate } from './in-flight-gate.js'
import { RetryBudget, type RetryBudgetSettings } from './retry-budget.js'

/** a partner's retry settings, compiled for the exchange */
export interface RetryPlan {
  readonly maxAttempts: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  readonly onStatus: readonly number[]
  readonly respectRetryAfter: boolean
  /** largest request body buffered so it can be sent again */
  readonly replayBufferBytes: number
}

export interface PartnerGuards {
  readonly slug: string
  readonly budget: RetryBudget
  readonly gate: InFlightGate
}

export interface ReliabilitySnapshot {
  partner: string
  openBreakers: { partner: number; credential: number }
  breakerOpenings: { partner: number; credential: number }
  inFlight: number
  concurrencyRefused: number
  retryBudgetExhausted: number
}

interface TrackedBreaker { partnerId: string; slug: string; scope: 'partner' | 'credential'; breaker: CircuitBreaker }

const DEFAULT_REPLAY_BUFFER_BYTES = 64 * 1024

export class PartnerReliability {
  readonly #workers: number
  readonly #replayBufferBytes: number
  readonly #partners = new Map<string, PartnerGuards>()
  readonly #breakers = new Map<string, TrackedBreaker>()
  /** deleted partners: a context built from a read taken before the deletion gets untracked state */
  readonly #deleted = new Set<string>()

  constructor (options: { workers: number; replayBufferBytes?: number }) {
    this.#workers = Math.max(1, options.workers)
    this.#replayBufferBytes = options.replayBufferBytes ?? DEFAULT_REPLAY_BUFFER_BYTES
  }

  retryPlan (retry: RetrySettings): RetryPlan {
    return Object.freeze({
      maxAttempts: retry.max_attempts,
      baseDelayMs: retry.base_delay_ms,
      maxDelayMs: retry.max_delay_ms,
      onStatus: Object.freeze([...retry.on_status]),
      respectRetryAfter: retry.respect_retry_after,
      replayBufferBytes: this.#replayBufferBytes,
    })
  }

  partner (partnerId: string, slug: string, retry: RetrySettings, breaker: CircuitBreakerSettings): PartnerGuards {
    const budget = budgetSettings(retry)
    // this worker's share of the node's cap, never below one
    const share = Math.max(1, Math.ceil(breaker.max_in_flight / this.#workers))
    if (this.#deleted.has(partnerId)) return Object.freeze({ slug, budget: new RetryBudget(budget), gate: new InFlightGate(share) })
    let guards = this.#partners.get(partnerId)
    if (guards === undefined || guards.slug !== slug) {
      // a renamed partner keeps its state: only the label its metrics carry changes
      guards = Object.freeze({ slug, budget: guards?.budget ?? new RetryBudget(budget), gate: guards?.gate ?? new InFlightGate(share) })
      this.#partners.set(partnerId, guards)
    }
    guards.budget.configure(budget)
    guards.gate.configure(share)
    return guards
  }

  /** the breaker of one partner environment (a sandbox outage must not open production's) */
  environmentBreaker (partnerId: string, environment: string, slug: string, settings: CircuitBreakerSettings): CircuitBreaker {
    return this.#breaker(`p ${partnerId} ${environment}`, partnerId, slug, 'partner', settings)
  }

  credentialBreaker (credentialId: string, partnerId: string, slug: string, settings: CircuitBreakerSettings): CircuitBreaker {
    return this.#breaker(`c ${credentialId}`, partnerId, slug, 'credential', settings)
  }

  /**
   * A deleted partner: its guards and every breaker of its environments and credentials go,
   * all at once, so its metric series disappear rather than any surviving counter going down.
   * Requests still in flight keep the objects they hold; a key context still being built from
   * a read taken before the deletion gets state nobody tracks (ids are never reused).
   */
  forgetPartner (partnerId: string): void {
    this.#deleted.add(partnerId)
    this.#partners.delete(partnerId)
    for (const [id, tracked] of this.#breakers) if (tracked.partnerId === partnerId) this.#breakers.delete(id)
  }

  /** the partners this worker holds state for, to check after messages may have been lost */
  partnerIds (): string[] {
    const ids = new Set(this.#partners.keys())
    for (const tracked of this.#breakers.values()) ids.add(tracked.partnerId)
    return [...ids]
  }

  /** scrape time: per partner slug */
  snapshot (): ReliabilitySnapshot[] {
    const bySlug = new Map<string, ReliabilitySnapshot>()
    const entry = (slug: string): ReliabilitySnapshot => {
      let s = bySlug.get(slug)
      if (s === undefined) {
        s = { partner: slug, openBreakers: { partner: 0, credential: 0 }, breakerOpenings: { partner: 0, credential: 0 }, inFlight: 0, concurrencyRefused: 0, retryBudgetExhausted: 0 }
        bySlug.set(slug, s)
      }
      return s
    }
    const now = Date.now()
    for (const { slug, scope, breaker } of this.#breakers.values()) {
      const s = entry(slug)
      // refusing right now: a breaker past open_ms waiting for a probe is not counted, so an
      // idle partner that recovered stops alerting without needing traffic
      if (breaker.blocks(now)) s.openBreakers[scope]++
      s.breakerOpenings[scope] += breaker.opened
    }
    for (const guards of this.#partners.values()) {
      const s = entry(guards.slug)
      s.inFlight += guards.gate.inFlight
      s.concurrencyRefused += guards.gate.refused
      s.retryBudgetExhausted += guards.budget.exhausted
    }
    return [...bySlug.values()]
  }

  #breaker (id: string, partnerId: string, slug: string, scope: TrackedBreaker['scope'], settings: CircuitBreakerSettings): CircuitBreaker {
    const wanted: BreakerSettings = { failureThreshold: settings.failure_threshold, openMs: settings.open_ms }
    if (this.#deleted.has(partnerId)) return new CircuitBreaker(wanted)
    let tracked = this.#breakers.get(id)
    if (tracked === undefined) {
      tracked = { partnerId, slug, scope, breaker: new CircuitBreaker(wanted) }
      this.#breakers.set(id, tracked)
    } else {
      tracked.slug = slug
      tracked.breaker.configure(wanted)
    }
    return tracked.breaker
  }
}

function budgetSettings (retry: RetrySettings): RetryBudgetSettings {
  return { ratio: retry.budget_percent / 100, minPerSecond: retry.budget_min_per_second }
}
