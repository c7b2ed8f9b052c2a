// Policy bodies (docs/admin-api.md): limits, budgets, endpoint costs, the allow list, x402 payment
// settings and what happens when the limit store is down.
import { ValidationError } from '../errors.js'
import { validatePaymentSettings } from '../payments/payment-settings.js'
import type { AllowRule, Budget, CostRule, GovernanceFailureMode, PolicyInput } from '../store/model.js'
import { bodyObject } from './validate.js'
import { child, item } from '../validation/field-path.js'
import { array, integer, label, object, onlyFields } from '../validation/json-value.js'
import { endpointMethod, endpointPath } from '../validation/endpoint-rule.js'
import { rateLimit } from './validate-rate-limit.js'

const FIELDS = new Set([
  'name', 'rate_limit', 'customer_rate_limit', 'budget', 'customer_budget', 'costs', 'allow', 'payment', 'on_governance_failure',
  'max_in_flight', 'customer_max_in_flight',
])
const BUDGET_FIELDS = new Set(['monthly'])
const COST_FIELDS = new Set(['method', 'path', 'cost'])
const ALLOW_FIELDS = new Set(['method', 'path'])
const MAX_RULES = 1000
const MAX_COST = 1_000_000_000

export function parsePolicyCreate (body: unknown): PolicyInput {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  return {
    name: policyName(b.name),
    rate_limit: rateLimit(b.rate_limit, 'rate_limit'),
    customer_rate_limit: rateLimit(b.customer_rate_limit, 'customer_rate_limit'),
    budget: budget(b.budget, 'budget'),
    customer_budget: budget(b.customer_budget, 'customer_budget'),
    costs: costs(b.costs),
    allow: allow(b.allow),
    payment: validatePaymentSettings(b.payment, 'payment'),
    // fail closed unless the operator opts into unmetered traffic during an outage
    on_governance_failure: b.on_governance_failure === undefined ? 'deny' : governanceFailure(b.on_governance_failure),
    max_in_flight: maxInFlight(b.max_in_flight, 'max_in_flight'),
    customer_max_in_flight: maxInFlight(b.customer_max_in_flight, 'customer_max_in_flight'),
  }
}

/** Only the fields present; null clears an optional setting. */
export function parsePolicyPatch (body: unknown): Partial<PolicyInput> {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  const patch: Partial<PolicyInput> = {}
  if (b.name !== undefined) patch.name = policyName(b.name)
  if (b.rate_limit !== undefined) patch.rate_limit = rateLimit(b.rate_limit, 'rate_limit')
  if (b.customer_rate_limit !== undefined) patch.customer_rate_limit = rateLimit(b.customer_rate_limit, 'customer_rate_limit')
  if (b.budget !== undefined) patch.budget = budget(b.budget, 'budget')
  if (b.customer_budget !== undefined) patch.customer_budget = budget(b.customer_budget, 'customer_budget')
  if (b.costs !== undefined) patch.costs = costs(b.costs)
  if (b.allow !== undefined) patch.allow = allow(b.allow)
  if (b.payment !== undefined) patch.payment = validatePaymentSettings(b.payment, 'payment')
  if (b.on_governance_failure !== undefined) patch.on_governance_failure = governanceFailure(b.on_governance_failure)
  if (b.max_in_flight !== undefined) patch.max_in_flight = maxInFlight(b.max_in_flight, 'max_in_flight')
  if (b.customer_max_in_flight !== undefined) patch.customer_max_in_flight = maxInFlight(b.customer_max_in_flight, 'customer_max_in_flight')
  return patch
}

/** a positive count of requests, or null (absent) for no cap */
function maxInFlight (value: unknown, field: string): number | null {
  if (value === undefined || value === null) return null
  return integer(value, field, 1, 1_000_000)
}

function policyName (value: unknown): string {
  const name = label(value, 'name')
  // Policies are looked up by id or by name; a name shaped like an id could shadow another policy.
  if (name.startsWith('pol_')) throw new ValidationError('name', "must not start with 'pol_' (reserved for ids)")
  return name
}

function budget (value: unknown, field: string): Budget | null {
  if (value === undefined || value === null) return null
  const o = object(value, field)
  onlyFields(o, BUDGET_FIELDS, field)
  return { monthly: integer(o.monthly, child(field, 'monthly'), 1, Number.MAX_SAFE_INTEGER) }
}

function costs (value: unknown): CostRule[] {
  if (value === undefined || value === null) return []
  return array(value, 'costs', MAX_RULES).map((rule, i) => {
    const field = item('costs', i)
    const o = object(rule, field)
    onlyFields(o, COST_FIELDS, field)
    return {
      method: endpointMethod(o.method, child(field, 'method')),
      path: endpointPath(o.path, child(field, 'path')),
      cost: integer(o.cost, child(field, 'cost'), 0, MAX_COST),
    }
  })
}

/** null (absent) allows everything; an empty list allows nothing. */
function allow (value: unknown): AllowRule[] | null {
  if (value === undefined || value === null) return null
  return array(value, 'allow', MAX_RULES).map((rule, i) => {
    const field = item('allow', i)
    const o = object(rule, field)
    onlyFields(o, ALLOW_FIELDS, field)
    return { method: endpointMethod(o.method, child(field, 'method')), path: endpointPath(o.path, child(field, 'path')) }
  })
}

// Not nullable, unlike the optional settings: there is no "unset", only the two modes.
function governanceFailure (value: unknown): GovernanceFailureMode {
  if (value !== 'deny' && value !== 'allow') throw new ValidationError('on_governance_failure', "must be 'deny' or 'allow'")
  return value
}
