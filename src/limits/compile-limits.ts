// Policy and credential limits compiled into the specs the admission stores take, once per
// key context: nothing about a limit is computed per request but the decision itself.
import type { Budget, CostRule, Policy, RateLimit } from '../store/model.js'
import { compileEndpoint, findEndpoint, type CompiledEndpoint } from '../http/endpoint-pattern.js'
import type { BudgetSpec, RateLimitSpec } from './admission.js'

export function rateLimitSpec (name: string, subject: string, limit: RateLimit): RateLimitSpec {
  return Object.freeze({
    name,
    subject,
    // fractional ms are kept: 3000 requests per second is one every 0.333 ms
    intervalMs: (limit.per_seconds * 1000) / limit.requests,
    burst: limit.burst,
    quota: limit.requests,
    windowSeconds: limit.per_seconds,
  })
}

export interface CompiledLimits {
  /** key limit first, then customer limit */
  readonly limits: readonly RateLimitSpec[]
  readonly budgets: readonly BudgetSpec[]
  readonly costs: CompiledCosts
  /** consistency group of the key's and customer's counters */
  readonly owner: string
  /** `RateLimit-Policy` header value, or null when no rate limit applies */
  readonly policyHeader: string | null
}

export interface CompiledCosts {
  readonly rules: readonly CompiledEndpoint[]
  readonly values: readonly number[]
}

export function compileLimits (policy: Policy, keyId: string, customer: string | null): CompiledLimits {
  const limits: RateLimitSpec[] = []
  if (policy.rate_limit !== null) limits.push(rateLimitSpec('key', keyId, policy.rate_limit))
  if (policy.customer_rate_limit !== null && customer !== null) limits.push(rateLimitSpec('customer', customer, policy.customer_rate_limit))
  const budgets: BudgetSpec[] = []
  if (policy.budget !== null) budgets.push(budgetSpec('key', keyId, policy.budget))
  if (policy.customer_budget !== null && customer !== null) budgets.push(budgetSpec('customer', customer, policy.customer_budget))
  return Object.freeze({
    limits: Object.freeze(limits),
    budgets: Object.freeze(budgets),
    costs: compileCosts(policy.costs),
    owner: ownerGroup(keyId, customer),
    policyHeader: limits.length === 0 ? null : limits.map((l) => `"${l.name}";q=${l.quota};w=${l.windowSeconds}`).join(', '),
  })
}

/** the consistency group of a key's and its customer's counters (see AdmissionRequest.groups) */
export function ownerGroup (keyId: string, customer: string | null): string {
  return customer === null ? `key:${keyId}` : `customer:${customer}`
}

function budgetSpec (name: 'key' | 'customer', subject: string, budget: Budget): BudgetSpec {
  return Object.freeze({ name, subject, monthly: budget.monthly })
}

function compileCosts (rules: CostRule[]): CompiledCosts {
  return Object.freeze({
    rules: Object.freeze(rules.map((r) => compileEndpoint(r.method, r.path))),
    values: Object.freeze(rules.map((r) => r.cost)),
  })
}

/** HOT PATH: the first matching rule's cost, default 1 */
export function costOf (costs: CompiledCosts, method: string, path: string): number {
  if (costs.rules.length === 0) return 1
  const i = findEndpoint(costs.rules, method, path)
  return i === -1 ? 1 : costs.values[i]!
}
