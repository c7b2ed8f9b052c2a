// What in the stored configuration cannot serve, found the way the data plane would find it at
// request time: every credential whose secret parts do not resolve, decrypt or fit its partner's
// auth, every partner whose CA bundle cannot be read, and every bound partner left with no usable
// credential for an environment a working key of the policy is in (those requests would be
// answered 502 partner_misconfigured).
import { compileCredentialAuth } from '../partner-auth/compile-credential-auth.js'
import type { SecretResolver } from '../secrets/secret-resolver.js'
import type { ControlStore } from '../store/control-store.js'
import type { Credential, Partner } from '../store/model.js'

export interface Misconfiguration {
  partner: string
  /** null: every environment of the partner */
  environment: string | null
  /** null: the partner itself (no usable credential, its CA) */
  credential: { id: string; name: string } | null
  /** never a secret value: which part, which variable or file, what is wrong */
  reason: string
}

export async function findMisconfigurations (store: ControlStore, secrets: SecretResolver): Promise<Misconfiguration[]> {
  const [partners, bindings, keyEnvironments] = await Promise.all([store.listPartners(), store.listBindings(), store.keyEnvironments()])
  const environmentsOf = new Map<string, Set<string>>()
  for (const { policy_id: policy, environment } of keyEnvironments) {
    environmentsOf.set(policy, (environmentsOf.get(policy) ?? new Set()).add(environment))
  }
  const found: Misconfiguration[] = []
  for (const partner of partners) {
    const credentials = await store.listCredentials(partner.id)
    const ca = await partnerCa(partner, secrets, found)
    const unusable = new Set<string>()
    for (const credential of credentials) {
      const reason = await credentialProblem(partner, credential, ca ?? null, secrets)
      if (reason === null) continue
      unusable.add(credential.id)
      found.push({ partner: partner.slug, environment: credential.environment, credential: { id: credential.id, name: credential.name }, reason })
    }
    if (ca === undefined) continue // nothing is sent to this partner; said once above
    const reported = new Set<string>()
    for (const binding of bindings) {
      if (binding.partner_id !== partner.id) continue
      for (const environment of environmentsOf.get(binding.policy_id) ?? []) {
        if (partner.base_urls[environment] === undefined) continue // 403 environment_not_allowed: the partner's choice
        const bound = credentials.filter((c) => c.environment === environment && (binding.credentials === null || binding.credentials.includes(c.id)))
        if (bound.some((c) => !unusable.has(c.id))) continue
        const reason = bound.length === 0
          ? `no credential for environment ${environment}${binding.credentials === null ? '' : ` among those binding ${binding.id} names`}`
          : `none of its ${bound.length} credential${bound.length === 1 ? '' : 's'} for environment ${environment} is usable`
        if (reported.has(reason)) continue
        reported.add(reason)
        found.push({ partner: partner.slug, environment, credential: null, reason: `keys of a bound policy are in ${environment}, but ${reason}` })
      }
    }
  }
  return found
}

/** the partner's CA bundle: null when it has none, undefined (and a problem noted) when it cannot be read */
async function partnerCa (partner: Partner, secrets: SecretResolver, found: Misconfiguration[]): Promise<string | null | undefined> {
  if (partner.tls === null) return null
  try {
    return await secrets.resolve(partner.tls.ca)
  } catch (err) {
    found.push({ partner: partner.slug, environment: null, credential: null, reason: `tls.ca: ${(err as Error).message}` })
    return undefined
  }
}

async function credentialProblem (partner: Partner, credential: Credential, ca: string | null, secrets: SecretResolver): Promise<string | null> {
  try {
    await compileCredentialAuth(partner, credential, ca, { secrets, pools: null, tokens: null })
    return null
  } catch (err) {
    return (err as Error).message
  }
}
