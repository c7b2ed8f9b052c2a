// /admin/bindings: which partners a policy's keys may call, and with which credentials.
import type { Router } from '../../http/router.js'
import { ValidationError } from '../../errors.js'
import { created, noContent, notFound, ok, type AdminHandler } from '../reply.js'
import type { AdminRouteDeps } from '../route-deps.js'
import { checkQuery } from '../validate.js'
import { item } from '../../validation/field-path.js'
import { parseBindingCreate } from '../validate-binding.js'
import { bindingView } from '../views.js'

const NO_QUERY = new Set<string>()

export function registerBindingRoutes (router: Router<AdminHandler>, deps: AdminRouteDeps): void {
  const { store, invalidations, changes } = deps

  router.on('POST', '/admin/bindings', async (call) => {
    const request = parseBindingCreate(call.body)
    // References inside a body that name nothing are invalid input (400), not a missing URL resource (404).
    const policy = await store.getPolicy(request.policy)
    if (policy === null) throw new ValidationError('policy', 'no policy has this id or name')
    const partner = await store.getPartner(request.partner)
    if (partner === null) throw new ValidationError('partner', 'no partner has this slug')
    if (request.credentials !== null) {
      const own = new Set((await store.listCredentials(partner.id)).map((c) => c.id))
      for (const [i, id] of request.credentials.entries()) {
        if (!own.has(id)) throw new ValidationError(item('credentials', i), `is not a credential of partner '${partner.slug}'`)
      }
    }
    const binding = await store.createBinding({ policy_id: policy.id, partner_id: partner.id, credentials: request.credentials })
    invalidations.publish({ kind: 'policy', id: policy.id })
    await changes.record(call, 'create', 'binding', binding.id, null, bindingView(binding, partner.slug))
    return created(bindingView(binding, partner.slug))
  })

  router.on('GET', '/admin/bindings', async ({ query }) => {
    checkQuery(query, NO_QUERY)
    const [bindings, partners] = await Promise.all([store.listBindings(), store.listPartners()])
    const slugs = new Map(partners.map((p) => [p.id, p.slug]))
    return ok(bindings.map((b) => bindingView(b, slugs.get(b.partner_id) ?? null)))
  })

  router.on('DELETE', '/admin/bindings/:id', async (call) => {
    const deleted = await store.deleteBinding(call.params[0])
    if (deleted === null) return notFound('binding', call.params[0])
    invalidations.publish({ kind: 'policy', id: deleted.policy_id })
    const partner = await store.getPartnerById(deleted.partner_id)
    await changes.record(call, 'delete', 'binding', deleted.id, bindingView(deleted, partner?.slug ?? null), null)
    return noContent()
  })
}
