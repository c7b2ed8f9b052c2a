// The control-plane state a governed request needs, created through the admin API the way an
// operator would: partner → inline credential → policy → binding → virtual key.
import type { RelayKey } from './start-relaykey.js'

export interface GovernedPartnerOptions {
  slug: string
  upstreamUrl: string
  environment?: string
  /** the policy's allow list (CONTRACT §5); absent: everything allowed */
  allow?: Array<{ method: string; path: string }>
  /** further policy fields (rate_limit, budget, costs…) for scenarios that measure them */
  policy?: Record<string, unknown>
  /** the partner's auth (default: a static header) and the credential's other secret parts */
  auth?: Record<string, unknown>
  secretParts?: Record<string, unknown>
}

export interface GovernedPartner {
  slug: string
  partnerId: string
  credentialId: string
  policyId: string
  keyId: string
  /** the raw virtual key, for the X-RelayKey header */
  key: string
}

export async function createGovernedPartner (rk: RelayKey, options: GovernedPartnerOptions): Promise<GovernedPartner> {
  const environment = options.environment ?? 'production'
  const partner = await created<{ id: string }>(rk, 'POST', '/admin/partners', {
    slug: options.slug,
    base_urls: { [environment]: options.upstreamUrl },
    auth: options.auth ?? { type: 'header', name: 'X-App-Token', prefix: '' },
  })
  const credential = await created<{ id: string }>(rk, 'POST', `/admin/partners/${options.slug}/credentials`, {
    name: 'bench', environment, secret: { provider: 'inline', value: 'bench-upstream-secret' }, ...options.secretParts,
  })
  const policy = await created<{ id: string }>(rk, 'POST', '/admin/policies', {
    name: `${options.slug}-bench`,
    ...(options.allow === undefined ? {} : { allow: options.allow }),
    ...options.policy,
  })
  await created(rk, 'POST', '/admin/bindings', { policy: policy.id, partner: options.slug })
  const key = await created<{ id: string; key: string }>(rk, 'POST', '/admin/keys', {
    name: `${options.slug} bench key`, policy: policy.id, environment,
  })
  return { slug: options.slug, partnerId: partner.id, credentialId: credential.id, policyId: policy.id, keyId: key.id, key: key.key }
}

/**
 * `count` more virtual keys under `policyId`, created through the admin API `concurrency` at a
 * time (each one is a database write and an invalidation message); resolves with the raw keys
 * in creation order.
 */
export async function createVirtualKeys (rk: RelayKey, options: {
  policyId: string
  count: number
  concurrency: number
  environment?: string
  namePrefix?: string
}): Promise<string[]> {
  const keys = new Array<string>(options.count)
  const environment = options.environment ?? 'production'
  const name = options.namePrefix ?? 'bench key'
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < options.count) {
      const i = next++
      const key = await created<{ key: string }>(rk, 'POST', '/admin/keys', { name: `${name} ${i}`, policy: options.policyId, environment })
      keys[i] = key.key
    }
  }
  await Promise.all(Array.from({ length: Math.min(options.concurrency, options.count) }, lane))
  return keys
}

async function created<T = unknown> (rk: RelayKey, method: string, path: string, body: unknown): Promise<T> {
  const res = await rk.admin<T>(method, path, body)
  if (res.status !== 201) throw new Error(`admin ${method} ${path} answered ${res.status}: ${JSON.stringify(res.body)}`)
  return res.body
}
