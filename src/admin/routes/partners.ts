// /admin/partners: the upstream APIs RelayKey fronts.
import type { Router } from '../../http/router.js'
import { created, noContent, notFound, ok, refuse, type AdminHandler } from '../reply.js'
import type { AdminRouteDeps } from '../route-deps.js'
import { ValidationError } from '../../errors.js'
import { checkQuery } from '../validate.js'
import { parsePartnerCreate, parsePartnerPatch } from '../validate-partner.js'
import { bindingView, credentialView, partnerView } from '../views.js'
import { requiredParts } from '../validate-partner-auth.js'
import type { SecretPart } from '../../store/model.js'

const NO_QUERY = new Set<string>()

export function registerPartnerRoutes (router: Router<AdminHandler>, deps: AdminRouteDeps): void {
  const { store, invalidations, egress, changes } = deps
  const rules = { cipher: deps.cipher, filesDir: deps.secretFilesDir }

  /** a base URL the egress policy would refuse every connection to is refused now, by name */
  const checkEgress = (baseUrls: Record<string, string>): void => {
    for (const [env, url] of Object.entries(baseUrls)) {
      const refusal = egress.hostRefusal(new URL(url).hostname)
      if (refusal !== null) throw new ValidationError(`base_urls.${env}`, refusal)
    }
  }

  router.on('POST', '/admin/partners', async (call) => {
    const input = parsePartnerCreate(call.body, rules)
    checkEgress(input.base_urls)
    const partner = await store.createPartner(input)
    invalidations.publish({ kind: 'partner', id: partner.id })
    await changes.record(call, 'create', 'partner', partner.id, null, partnerView(partner))
    return created(partnerView(partner))
  })

  router.on('GET', '/admin/partners', async ({ query }) => {
    checkQuery(query, NO_QUERY)
    return ok((await store.listPartners()).map(partnerView))
  })

  router.on('GET', '/admin/partners/:slug', async ({ params }) => {
    const partner = await store.getPartner(params[0])
    return partner === null ? notFound('partner', params[0]) : ok(partnerView(partner))
  })

  router.on('PATCH', '/admin/partners/:slug', async (call) => {
    const { params, body } = call
    const slug = params[0]
    const current = await store.getPartner(slug)
    if (current === null) return notFound('partner', slug)
    const patch = parsePartnerPatch(body, current, rules)
    if (patch.base_urls !== undefined) {
      checkEgress(patch.base_urls)
      // A credential is tied to one environment of its partner; dropping that environment
      // would leave it unreachable, so the credential has to go first.
      const credentials = await store.listCredentials(current.id)
      const orphan = credentials.find((c) => patch.base_urls !== undefined && !Object.hasOwn(patch.base_urls, c.environment))
      if (orphan !== undefined) {
        return refuse('conflict', `base_urls.${orphan.environment}: credential '${orphan.name}' (${orphan.id}) still uses this environment; delete it first`)
      }
    }
    if (patch.auth !== undefined) {
      // a credential the new auth cannot use would silently drop out of rotation: its missing
      // part is added first (a credential may hold parts its partner's auth does not need yet)
      const needs = requiredParts(patch.auth)
      for (const credential of await store.listCredentials(current.id)) {
        const missing = needs.secret && credential.secret === null ? 'secret' : needs.parts.find((part) => credential.secret_parts[part as SecretPart] === undefined)
        if (missing !== undefined) {
          return refuse('conflict', `auth: credential '${credential.name}' (${credential.id}) has no ${missing}, which auth ${patch.auth.type} needs; add it to the credential first`)
        }
      }
    }
    if (Object.keys(patch).length === 0) return ok(partnerView(current))
    const updated = await store.updatePartner(slug, patch)
    if (updated === null) return notFound('partner', slug)
    invalidations.publish({ kind: 'partner', id: updated.id })
    await changes.record(call, 'update', 'partner', updated.id, partnerView(current), partnerView(updated))
    return ok(partnerView(updated))
  })

  router.on('DELETE', '/admin/partners/:slug', async (call) => {
    const current = await store.getPartner(call.params[0])
    if (current === null) return notFound('partner', call.params[0])
    // its credentials and bindings go with it: each is a change of its own in the log
    const [credentials, bindings] = await Promise.all([store.listCredentials(current.id), store.listBindings()])
    const deleted = await store.deletePartner(call.params[0])
    if (deleted === null) return notFound('partner', call.params[0])
    invalidations.publish({ kind: 'partner', id: deleted.id, deleted: true })
    for (const binding of bindings) {
      if (binding.partner_id === deleted.id) await changes.record(call, 'delete', 'binding', binding.id, bindingView(binding, deleted.slug), null)
    }
    for (const credential of credentials) await changes.record(call, 'delete', 'credential', credential.id, credentialView(credential), null)
    await changes.record(call, 'delete', 'partner', deleted.id, partnerView(deleted), null)
    return noContent()
  })
}
