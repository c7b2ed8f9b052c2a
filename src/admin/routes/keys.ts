// /admin/keys: virtual keys. The raw key exists only in the responses to create and rotate;
// the store keeps its HMAC digest and a display prefix.
import type { Router } from '../../http/router.js'
import { ValidationError } from '../../errors.js'
import type { KeyFilter } from '../../store/control-store.js'
import type { KeyPatch, VirtualKey } from '../../store/model.js'
import { created, notFound, ok, refuse, type AdminHandler, type AdminReply } from '../reply.js'
import type { AdminRouteDeps } from '../route-deps.js'
import { checkQuery, queryValue } from '../validate.js'
import { parseKeyCreate, parseKeyPatch, parseRotate } from '../validate-key.js'
import { keyView } from '../views.js'

const LIST_QUERY = new Set(['policy', 'customer'])

export function registerKeyRoutes (router: Router<AdminHandler>, deps: AdminRouteDeps): void {
  const { store, codec, invalidations, changes, now } = deps

  router.on('POST', '/admin/keys', async (call) => {
    const request = parseKeyCreate(call.body, now())
    const policy = await store.getPolicy(request.policy)
    if (policy === null) throw new ValidationError('policy', 'no policy has this id or name')
    const issued = codec.issue()
    const key = await store.createKey({
      name: request.name,
      policy_id: policy.id,
      environment: request.environment,
      customer: request.customer,
      team: request.team,
      service: request.service,
      expires_at: request.expires_at,
    }, issued.prefix, issued.digest)
    invalidations.publish({ kind: 'key', id: key.id })
    // the view only: the raw key is in this response and nowhere else
    await changes.record(call, 'create', 'key', key.id, null, keyView(key, now()))
    return created({ ...keyView(key, now()), key: issued.key })
  })

  router.on('GET', '/admin/keys', async ({ query }) => {
    checkQuery(query, LIST_QUERY)
    const filter: KeyFilter = {}
    const policyRef = queryValue(query, 'policy')
    if (policyRef !== null) {
      const policy = await store.getPolicy(policyRef)
      if (policy === null) return ok([]) // no such policy, so no keys use it
      filter.policy_id = policy.id
    }
    const customer = queryValue(query, 'customer')
    if (customer !== null) filter.customer = customer
    const keys = await store.listKeys(filter)
    const at = now()
    return ok(keys.map((k) => keyView(k, at)))
  })

  router.on('GET', '/admin/keys/:id', async ({ params }) => {
    const key = await store.getKey(params[0])
    return key === null ? notFound('key', params[0]) : ok(keyView(key, now()))
  })

  router.on('PATCH', '/admin/keys/:id', async (call) => {
    const { params, body } = call
    const current = await store.getKey(params[0])
    if (current === null) return notFound('key', params[0])
    if (current.revoked_at !== null) return revoked(current)
    const request = parseKeyPatch(body, current, now())
    const patch: KeyPatch = {}
    if (request.name !== undefined) patch.name = request.name
    if (request.customer !== undefined) patch.customer = request.customer
    if (request.team !== undefined) patch.team = request.team
    if (request.service !== undefined) patch.service = request.service
    if (request.expires_at !== undefined) patch.expires_at = request.expires_at
    if (request.policy !== undefined) {
      const policy = await store.getPolicy(request.policy)
      if (policy === null) throw new ValidationError('policy', 'no policy has this id or name')
      patch.policy_id = policy.id
    }
    if (Object.keys(patch).length === 0) return ok(keyView(current, now()))
    if (patch.customer !== undefined && patch.customer !== current.customer) {
      // a key's budget counter lives with its customer's counters (one atomic decision, one
      // Redis Cluster slot): moving the key would start its month over, a way around a hard
      // budget — whether the budget is the key's policy's now or the one the same patch sets
      for (const policyId of new Set([current.policy_id, patch.policy_id ?? current.policy_id])) {
        if ((await store.getPolicy(policyId))?.budget != null) {
          return refuse('conflict', "customer: a key whose policy has a budget cannot change customer (its month's spending would reset); issue a new key instead")
        }
      }
    }
    const updated = await store.updateKey(current.id, patch)
    if (updated === null) return notFound('key', params[0])
    invalidations.publish({ kind: 'key', id: updated.id })
    await changes.record(call, 'update', 'key', updated.id, keyView(current, now()), keyView(updated, now()))
    return ok(keyView(updated, now()))
  })

  router.on('POST', '/admin/keys/:id/revoke', async (call) => {
    const { params } = call
    const current = await store.getKey(params[0])
    if (current === null) return notFound('key', params[0])
    // Revoking twice keeps the first revocation time, but publishes again: an operator who
    // repeats a revoke is making sure it took.
    const key = current.revoked_at !== null ? current : await store.revokeKey(current.id, new Date(now()))
    if (key === null) return notFound('key', params[0])
    invalidations.publish({ kind: 'key', id: key.id })
    // a repeated revoke changes nothing: one change, the first
    if (current.revoked_at === null) await changes.record(call, 'revoke', 'key', key.id, keyView(current, now()), keyView(key, now()))
    return ok(keyView(key, now()))
  })

  router.on('POST', '/admin/keys/:id/rotate', async (call) => {
    const { params, body } = call
    const current = await store.getKey(params[0])
    if (current === null) return notFound('key', params[0])
    if (current.revoked_at !== null) return revoked(current)
    const { graceSeconds } = parseRotate(body)
    const issued = codec.issue()
    const at = now()
    const key = await store.rotateKey(current.id, issued.digest, issued.prefix, new Date(at + graceSeconds * 1000))
    if (key === null) return notFound('key', params[0])
    invalidations.publish({ kind: 'key', id: key.id })
    // the prefix changes; the old key's grace period is what else an auditor wants to know
    await changes.record(call, 'rotate', 'key', key.id, keyView(current, at), { ...keyView(key, at), grace_seconds: graceSeconds })
    return ok({ ...keyView(key, at), key: issued.key })
  })
}

function revoked (key: VirtualKey): AdminReply {
  return refuse('conflict', `key: '${key.id}' was revoked at ${key.revoked_at ?? ''} and cannot be changed`)
}
