// A node's partners, credentials, policies and bindings as a config file that applies back as
// no change: no ids, presets folded back to their name, inline secrets by the digest of what the
// node holds (`{"provider":"inline","sealed":…}`), never a value. Keys are left out: a file
// issues keys, it does not list them.
import { stringify } from 'yaml'
import type { CurrentState, View } from './current-state.js'

export function exportDocument (current: CurrentState): Record<string, unknown[]> {
  const strip = (view: View, drop: string[]): View => Object.fromEntries(Object.entries(view).filter(([k]) => !drop.includes(k)))
  const partners = [...current.partners.values()].map((p) => {
    const partner = strip(p, ['id', 'created_at', 'updated_at'])
    if (partner.auth?.preset !== null && partner.auth?.preset !== undefined) {
      partner.auth = { type: partner.auth.type, preset: partner.auth.preset, max_body_bytes: partner.auth.max_body_bytes }
    }
    if (partner.tls === null) delete partner.tls
    return partner
  })
  const slugOf = new Map([...current.partners.values()].map((p) => [p.id as string, p.slug as string]))
  const credentials = [...current.credentials.values()].map((c) => {
    const credential = strip(c, ['id', 'partner_id', 'created_at', 'updated_at'])
    if (credential.secret === null) delete credential.secret
    return { partner: slugOf.get(c.partner_id), ...credential }
  })
  const policies = [...current.policies.values()].map((p) => strip(p, ['id', 'created_at', 'updated_at']))
  const bindings = [...current.bindings.entries()].map(([id, b]) => {
    const [policy, partner] = splitBinding(id)
    return b.credentials === null ? { policy, partner } : { policy, partner, credentials: b.credentials }
  })
  return { partners, credentials, policies, bindings }
}

export function exportYaml (current: CurrentState): string {
  return '# relaykey config export: apply with `relaykey config apply -f <file>` (no change)\n' +
    stringify(exportDocument(current), { lineWidth: 0 })
}

/** "policy/partner": a policy name may hold '/', a partner slug may not */
function splitBinding (id: string): [string, string] {
  const at = id.lastIndexOf('/')
  return [id.slice(0, at), id.slice(at + 1)]
}
