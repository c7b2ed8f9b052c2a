// GET /admin/usage: what keys, customers and partners did, from the audit table (requests,
// outcomes, cost, x402 payments) and the limits store (budget used this month).
import type { Router } from '../../http/router.js'
import { ValidationError } from '../../errors.js'
import type { AuditQuery } from '../../audit/audit-query.js'
import type { AdmissionStore, BudgetUsage } from '../../limits/admission.js'
import { budgetMonth } from '../../limits/budget-month.js'
import { ownerGroup } from '../../limits/compile-limits.js'
import type { ControlStore } from '../../store/control-store.js'
import { notFound, ok, type AdminHandler } from '../reply.js'
import { checkQuery, queryValue } from '../validate.js'

export interface UsageRouteDeps {
  store: ControlStore
  audit: AuditQuery
  budgets: Pick<AdmissionStore, 'budgetUsed'>
  now: () => number
}

const USAGE_QUERY = new Set(['key_id', 'customer', 'partner', 'month'])

export function registerUsageRoutes (router: Router<AdminHandler>, deps: UsageRouteDeps): void {
  const { store, audit, budgets } = deps

  router.on('GET', '/admin/usage', async ({ query }) => {
    checkQuery(query, USAGE_QUERY)
    const keyId = queryValue(query, 'key_id')
    const customer = queryValue(query, 'customer')
    const partner = queryValue(query, 'partner')
    const month = queryValue(query, 'month') ?? budgetMonth(deps.now())
    const match = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(month)
    if (match === null) throw new ValidationError('month', 'must be YYYY-MM')
    // from text, not Date.UTC, which reads years 0–99 as 1900–1999
    const from = new Date(`${month}-01T00:00:00Z`)
    const to = new Date(from)
    to.setUTCMonth(to.getUTCMonth() + 1)

    const key = keyId === null ? null : await store.getKey(keyId)
    if (keyId !== null && key === null) return notFound('key', keyId)
    const counts = await audit.usage({ key_id: keyId, customer, partner }, from, to)

    // the budget the numbers count against: the key's, else the customer's
    let budget: BudgetUsage | undefined
    if (key !== null) {
      const policy = await store.getPolicy(key.policy_id)
      if (policy?.budget != null) {
        const used = await budgets.budgetUsed(ownerGroup(key.id, key.customer), { name: 'key', subject: key.id }, month)
        budget = { limit: policy.budget.monthly, used, remaining: Math.max(0, policy.budget.monthly - used) }
      }
    } else if (customer !== null) {
      const limit = await customerBudget(store, customer)
      if (limit !== null) {
        const used = await budgets.budgetUsed(ownerGroup('', customer), { name: 'customer', subject: customer }, month)
        budget = { limit, used, remaining: Math.max(0, limit - used) }
      }
    }
    return ok({ month, key_id: keyId, customer, partner, ...counts, ...(budget === undefined ? {} : { budget }) })
  })
}

/** the monthly customer budget set on the policies of the customer's keys (the largest, if several differ) */
async function customerBudget (store: ControlStore, customer: string): Promise<number | null> {
  let limit: number | null = null
  const policyIds = new Set((await store.listKeys({ customer })).map((k) => k.policy_id))
  for (const id of policyIds) {
    const monthly = (await store.getPolicy(id))?.customer_budget?.monthly
    if (monthly !== undefined && (limit === null || monthly > limit)) limit = monthly
  }
  return limit
}
