// What a running node holds, read through its admin API: the resources a config file describes,
// keyed the way the file names them (partner slug, partner/credential name, policy name,
// policy/partner for a binding, key name).
import type { AdminClient } from '../cli/admin-client.js'

export type View = Record<string, any>

export interface CurrentState {
  partners: Map<string, View>
  /** "slug/name" → the credential (by its admin view) */
  credentials: Map<string, View>
  policies: Map<string, View>
  /** "policy/partner" → { id, credentials: names | null } */
  bindings: Map<string, { id: string; credentials: string[] | null }>
  /** every key (revoked ones too), by creation order */
  keys: View[]
  policyNameOf: Map<string, string>
}

export async function readCurrentState (client: AdminClient): Promise<CurrentState> {
  const [partners, policies, bindings, keys] = await Promise.all([
    client.expect<View[]>('GET', '/admin/partners', 200),
    client.expect<View[]>('GET', '/admin/policies', 200),
    client.expect<View[]>('GET', '/admin/bindings', 200),
    client.expect<View[]>('GET', '/admin/keys', 200),
  ])
  const state: CurrentState = {
    partners: new Map(partners.map((p) => [p.slug as string, p])),
    credentials: new Map(),
    policies: new Map(policies.map((p) => [p.name as string, p])),
    bindings: new Map(),
    keys,
    policyNameOf: new Map(policies.map((p) => [p.id as string, p.name as string])),
  }
  const credentialName = new Map<string, string>()
  const lists = await Promise.all(partners.map((partner) => client.expect<View[]>('GET', `/admin/partners/${encodeURIComponent(partner.slug)}/credentials`, 200)))
  for (const [i, partner] of partners.entries()) {
    for (const credential of lists[i]!) {
      state.credentials.set(`${partner.slug}/${credential.name}`, credential)
      credentialName.set(credential.id, credential.name)
    }
  }
  for (const binding of bindings) {
    const policy = state.policyNameOf.get(binding.policy_id)
    if (policy === undefined || binding.partner === null) continue
    state.bindings.set(`${policy}/${binding.partner}`, {
      id: binding.id,
      credentials: binding.credentials === null ? null : (binding.credentials as string[]).map((id) => credentialName.get(id) ?? id),
    })
  }
  return state
}
