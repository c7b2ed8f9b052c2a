// /admin/policies: what keys may do. `{id}` also accepts the policy's name, as the store does.
import type { Router } from '../../http/router.js'
import { created, noContent, notFound, ok, type AdminHandler } from '../reply.js'
import type { AdminRouteDeps } from '../route-deps.js'
import { checkQuery } from '../validate.js'
import { parsePolicyCreate, parsePolicyPatch } from '../validate-policy.js'
import { bindingView } from '../views.js'

const NO_QUERY = new Set<string>()

export function registerPolicyRoutes (router: Router<AdminHandler>, deps: AdminRouteDeps): void {
  const { store, invalidations, changes } = deps

  router.on('POST', '/admin/policies', async (call) => {
    const policy = await store.createPolicy(parsePolicyCreate(call.body))
    invalidations.publish({ kind: 'policy', id: policy.id })
    await changes.record(call, 'create', 'policy', policy.id, null, policy)
    return created(policy)
  })

  router.on('GET', '/admin/policies', async ({ query }) => {
    checkQuery(query, NO_QUERY)
    return ok(await store.listPolicies())
  })

  router.on('GET', '/admin/policies/:id', async ({ params }) => {
    const policy = await store.getPolicy(params[0])
    return policy === null ? notFound('policy', params[0]) : ok(policy)
  })

  router.on('PATCH', '/admin/policies/:id', async (call) => {
    const { params, body } = call
    const current = await store.getPolicy(params[0])
    if (current === null) return notFound('policy', params[0])
    const patch = parsePolicyPatch(body)
    if (Object.keys(patch).length === 0) return ok(current)
    const updated = await store.updatePolicy(current.id, patch)
    if (updated === null) return notFound('policy', params[0])
    invalidations.publish({ kind: 'policy', id: updated.id })
    await changes.record(call, 'update', 'policy', updated.id, current, updated)
    return ok(updated)
  })

  router.on('DELETE', '/admin/policies/:id', async (call) => {
    const { params } = call
    const current = await store.getPolicy(params[0])
    if (current === null) return notFound('policy', params[0])
    // its bindings go with it: each is a change of its own in the log
    const [bindings, partners] = await Promise.all([store.listBindings(), store.listPartners()])
    const deleted = await store.deletePolicy(current.id)
    if (deleted === null) return notFound('policy', params[0])
    invalidations.publish({ kind: 'policy', id: deleted.id })
    const slugs = new Map(partners.map((p) => [p.id, p.slug]))
    for (const binding of bindings) {
      if (binding.policy_id === deleted.id) await changes.record(call, 'delete', 'binding', binding.id, bindingView(binding, slugs.get(binding.partner_id) ?? null), null)
    }
    await changes.record(call, 'delete', 'policy', deleted.id, deleted, null)
    return noContent()
  })
}
