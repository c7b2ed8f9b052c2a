// /admin/partners/{slug}/credentials and /admin/credentials/{id}: the upstream secrets, which
// never leave in a response (see views.ts).
import type { Router } from '../../http/router.js'
import { created, noContent, notFound, ok, refuse, type AdminHandler } from '../reply.js'
import type { AdminRouteDeps } from '../route-deps.js'
import { checkQuery } from '../validate.js'
import { parseCredentialCreate, parseCredentialPatch } from '../validate-credential.js'
import { credentialView } from '../views.js'

const NO_QUERY = new Set<string>()

export function registerCredentialRoutes (router: Router<AdminHandler>, deps: AdminRouteDeps): void {
  const { store, cipher, secretFilesDir, invalidations, changes } = deps

  router.on('POST', '/admin/partners/:slug/credentials', async (call) => {
    const partner = await store.getPartner(call.params[0])
    if (partner === null) return notFound('partner', call.params[0])
    const credential = await store.createCredential(partner.id, parseCredentialCreate(call.body, partner, { cipher, filesDir: secretFilesDir }))
    invalidations.publish({ kind: 'partner', id: partner.id })
    await changes.record(call, 'create', 'credential', credential.id, null, credentialView(credential))
    return created(credentialView(credential))
  })

  router.on('GET', '/admin/partners/:slug/credentials', async ({ params, query }) => {
    checkQuery(query, NO_QUERY)
    const partner = await store.getPartner(params[0])
    if (partner === null) return notFound('partner', params[0])
    const credentials = await store.listCredentials(partner.id)
    return ok(credentials.map(credentialView))
  })

  router.on('PATCH', '/admin/credentials/:id', async (call) => {
    const { params, body } = call
    const current = await store.getCredential(params[0])
    if (current === null) return notFound('credential', params[0])
    const partner = await store.getPartnerById(current.partner_id)
    if (partner === null) return notFound('credential', params[0])
    const patch = parseCredentialPatch(body, current, partner, { cipher, filesDir: secretFilesDir })
    if (Object.keys(patch).length === 0) return ok(credentialView(current))
    const updated = await store.updateCredential(current.id, patch)
    if (updated === null) return notFound('credential', params[0])
    invalidations.publish({ kind: 'partner', id: updated.partner_id })
    await changes.record(call, 'update', 'credential', updated.id, credentialView(current), credentialView(updated))
    return ok(credentialView(updated))
  })

  router.on('DELETE', '/admin/credentials/:id', async (call) => {
    const id = call.params[0]
    const current = await store.getCredential(id)
    if (current === null) return notFound('credential', id)
    // A binding pinned to this credential would be left pointing at nothing (and bindings
    // cannot be edited), so the binding has to be removed or replaced first.
    const pinned = (await store.listBindings()).find((b) => b.credentials !== null && b.credentials.includes(id))
    if (pinned !== undefined) {
      return refuse('conflict', `credential: binding '${pinned.id}' lists this credential; delete that binding first`)
    }
    const deleted = await store.deleteCredential(id)
    if (deleted === null) return notFound('credential', id)
    invalidations.publish({ kind: 'partner', id: deleted.partner_id })
    await changes.record(call, 'delete', 'credential', deleted.id, credentialView(deleted), null)
    return noContent()
  })
}
