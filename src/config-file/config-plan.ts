// The changes that bring a node to what a config file says, field by field, in an order the
// admin API accepts (a part added to a credential before its partner's auth needs it, bindings
// gone before what they pin), and applying them. Secrets show as references only.
import { partnerView, credentialView, publicSecret } from '../admin/views.js'
import type { AdminClient } from '../cli/admin-client.js'
import { CliError, EXIT } from '../cli/cli-error.js'
import { KEEP_CIPHERTEXT, type DesiredState } from './desired-state.js'
import type { CurrentState, View } from './current-state.js'

export type Kind = 'partner' | 'credential' | 'policy' | 'binding' | 'key'

export interface FieldChange { field: string; from: unknown; to: unknown }

export interface Change {
  action: 'create' | 'update' | 'delete' | 'issue'
  kind: Kind
  /** slug, partner/credential, policy name, policy → partner, key name */
  name: string
  fields: FieldChange[]
  run: (client: AdminClient, report: (line: string) => void) => Promise<void>
}

export interface Plan {
  changes: Change[]
  /** what the node has and the file does not, left alone without --prune */
  unmanaged: Array<{ kind: Kind; name: string }>
}

const META = new Set(['id', 'partner_id', 'created_at', 'updated_at'])

export function planChanges (desired: DesiredState, current: CurrentState, prune: boolean): Plan {
  // the order the node accepts: a part added to a credential before its partner's auth needs it,
  // bindings and credentials gone before the environment or auth they hold on to changes, new
  // credentials after their partner's new auth, parts dropped once no auth needs them
  const steps: Record<'createPartners' | 'addParts' | 'unbind' | 'pruneCredentials' | 'updatePartners' | 'createCredentials' | 'dropParts' | 'policies' | 'bind' | 'pruneRest' | 'keys', Change[]> =
    { createPartners: [], addParts: [], unbind: [], pruneCredentials: [], updatePartners: [], createCredentials: [], dropParts: [], policies: [], bind: [], pruneRest: [], keys: [] }
  const unmanaged: Plan['unmanaged'] = []
  const kept = desired.kept

  for (const { input, body } of desired.partners) {
    const view = withKept(strip(partnerView({ ...input, id: '', created_at: '', updated_at: '' })), (path) => kept.get(`${input.slug}//${path}`), ['tls.ca'])
    const now = current.partners.get(input.slug)
    if (now === undefined) {
      steps.createPartners.push({ action: 'create', kind: 'partner', name: input.slug, fields: listFields(view, ['slug'], body), run: sendable(body, `partner ${input.slug}`, post('/admin/partners', body)) })
      continue
    }
    const fields = diffFields(strip(now), view)
    if (fields.length === 0) continue
    const patch: Record<string, unknown> = {}
    for (const { field } of fields) patch[field] = partnerPatchValue(field, body, input as unknown as View, now)
    steps.updatePartners.push({ action: 'update', kind: 'partner', name: input.slug, fields, run: sendable(patch, `partner ${input.slug}`, send('PATCH', `/admin/partners/${encodeURIComponent(input.slug)}`, 200, patch)) })
  }

  for (const { index, partner, input, body } of desired.credentials) {
    const name = `${partner}/${input.name}`
    const view = withKept(strip(credentialView({ ...input, id: '', partner_id: '', created_at: '', updated_at: '' })), (path) => kept.get(`${name}/${path}`))
    const now = current.credentials.get(name)
    if (now === undefined) {
      steps.createCredentials.push({ action: 'create', kind: 'credential', name, fields: listFields(view, ['name'], body), run: sendable(body, `credential ${name}`, post(`/admin/partners/${encodeURIComponent(partner)}/credentials`, body)) })
      continue
    }
    const fields = diffFields(strip(now), view)
    if (fields.length === 0) continue
    if (fields.some((f) => f.field === 'environment')) {
      throw desired.file.error(['credentials', index, 'environment'], `credential '${input.name}' of partner '${partner}' is in ${String(now.environment)} on the node, and a credential's environment cannot change: give this one another name (with --prune the old one goes)`)
    }
    // set and replaced parts first (the partner's new auth may need them), removed ones last (its old auth may)
    const adds: Record<string, unknown> = {}
    const drops: Record<string, unknown> = {}
    for (const { field } of fields) {
      if (body[field] === undefined || body[field] === null) drops[field] = null
      else adds[field] = SECRET_FIELDS.has(field) ? body[field] : (input as unknown as View)[field]
    }
    const id = now.id as string
    if (Object.keys(adds).length > 0) {
      steps.addParts.push({ action: 'update', kind: 'credential', name, fields: fields.filter((f) => f.field in adds), run: sendable(adds, `credential ${name}`, send('PATCH', `/admin/credentials/${id}`, 200, adds)) })
    }
    if (Object.keys(drops).length > 0) {
      steps.dropParts.push({ action: 'update', kind: 'credential', name, fields: fields.filter((f) => f.field in drops), run: send('PATCH', `/admin/credentials/${id}`, 200, drops) })
    }
  }

  for (const { input, body } of desired.policies) {
    const now = current.policies.get(input.name)
    if (now === undefined) {
      steps.policies.push({ action: 'create', kind: 'policy', name: input.name, fields: listFields(input as unknown as View, ['name'], body), run: post('/admin/policies', body) })
      continue
    }
    const fields = diffFields(strip(now), input as unknown as View)
    if (fields.length === 0) continue
    // the validated values: a field the file leaves out is its default, not null (which some fields refuse)
    const patch: Record<string, unknown> = {}
    for (const { field } of fields) patch[field] = (input as unknown as View)[field]
    steps.policies.push({ action: 'update', kind: 'policy', name: input.name, fields, run: send('PATCH', `/admin/policies/${now.id}`, 200, patch) })
  }

  const wantedBindings = new Set<string>()
  for (const binding of desired.bindings) {
    const id = `${binding.policy}/${binding.partner}`
    wantedBindings.add(id)
    const now = current.bindings.get(id)
    const name = `${binding.policy} → ${binding.partner}`
    const create = bind(binding.policy, binding.partner, binding.credentials)
    if (now === undefined) {
      steps.bind.push({ action: 'create', kind: 'binding', name, fields: [{ field: 'credentials', from: undefined, to: binding.credentials }], run: create })
    } else if (canonical(now.credentials) !== canonical(binding.credentials)) {
      // bindings have no PATCH: the old one goes, the new one comes (a moment without the binding)
      steps.unbind.push({ action: 'update', kind: 'binding', name, fields: [{ field: 'credentials', from: now.credentials, to: binding.credentials }], run: send('DELETE', `/admin/bindings/${now.id}`, 204) })
      steps.bind.push({ action: 'create', kind: 'binding', name, fields: [], run: create })
    }
  }

  const leftOver = <T>(kind: Kind, names: Iterable<[string, T]>, wanted: (name: string) => boolean, remove: (name: string, item: T) => Change, into = kind === 'binding' ? steps.unbind : steps.pruneRest): void => {
    for (const [name, item] of names) {
      if (wanted(name)) continue
      if (prune) into.push(remove(name, item))
      else unmanaged.push({ kind, name: kind === 'binding' ? name.replace('/', ' → ') : name })
    }
  }
  leftOver('binding', current.bindings, (n) => wantedBindings.has(n), (n, b) => ({ action: 'delete', kind: 'binding', name: n.replace('/', ' → '), fields: [], run: send('DELETE', `/admin/bindings/${b.id}`, 204) }))
  const desiredCredentials = new Set(desired.credentials.map((c) => `${c.partner}/${c.input.name}`))
  const desiredPartners = new Set(desired.partners.map((p) => p.input.slug))
  const desiredPolicies = new Set(desired.policies.map((p) => p.input.name))
  // a pruned partner takes its credentials with it: they are not deleted one by one
  leftOver('credential', current.credentials, (n) => desiredCredentials.has(n) || (prune && !desiredPartners.has(n.split('/')[0]!)),
    (n, c) => ({ action: 'delete', kind: 'credential', name: n, fields: [], run: send('DELETE', `/admin/credentials/${c.id}`, 204) }), steps.pruneCredentials)
  leftOver('policy', current.policies, (n) => desiredPolicies.has(n), (n, p) => {
    const users = current.keys.filter((k) => k.policy_id === p.id)
    if (users.length > 0) {
      const names = users.slice(0, 10).map((k) => `'${k.name}' (${k.id}${k.status === 'active' ? '' : `, ${k.status}`})`).join(', ')
      throw new CliError(`--prune would delete policy '${n}', which ${users.length} key(s) still use: ${names}${users.length > 10 ? ', …' : ''}. Keep it in the file, or move the keys to another policy first`, EXIT.failed)
    }
    return { action: 'delete', kind: 'policy', name: n, fields: [], run: send('DELETE', `/admin/policies/${p.id}`, 204) }
  })
  leftOver('partner', current.partners, (n) => desiredPartners.has(n), (n) => ({ action: 'delete', kind: 'partner', name: n, fields: [], run: send('DELETE', `/admin/partners/${encodeURIComponent(n)}`, 204) }))

  // keys are issued, never changed or revoked from a file (they are secrets, and a key's holder
  // depends on it): one with the name counts as there, a revoked one too, so a key revoked for
  // leaking is not issued again by the next apply (give the new one another name)
  const named = new Set(current.keys.map((k) => k.name as string))
  for (const { index, request } of desired.keys) {
    if (named.has(request.name)) continue
    named.add(request.name)
    if (request.expires_at !== null && Date.parse(request.expires_at) <= Date.now()) {
      throw desired.file.error(['keys', index, 'expires_at'], `key '${request.name}' is still to be issued and its expiry has passed`)
    }
    steps.keys.push({
      action: 'issue', kind: 'key', name: request.name, fields: listFields(request as unknown as View, ['name'], request as unknown as View),
      run: async (client, report) => {
        const key = await client.expect('POST', '/admin/keys', 201, request)
        report(`  key ${request.name} (${key.id}): ${key.key}    (shown once: store it now)`)
      },
    })
  }

  return {
    changes: [...steps.createPartners, ...steps.addParts, ...steps.unbind, ...steps.pruneCredentials, ...steps.updatePartners,
      ...steps.createCredentials, ...steps.dropParts, ...steps.policies, ...steps.bind, ...steps.pruneRest, ...steps.keys],
    unmanaged,
  }
}

/** runs the changes in order; each is reported once it is done */
export async function applyPlan (plan: Plan, client: AdminClient, report: (line: string) => void): Promise<void> {
  for (const change of plan.changes) {
    try {
      await change.run(client, report)
    } catch (err) {
      if (err instanceof CliError) throw new CliError(`${describe(change).split('\n')[0]}: ${err.message}`, EXIT.failed)
      throw err
    }
    report(describe(change))
  }
}

/** `+ partner sumsub`, then one indented line per field */
export function describe (change: Change): string {
  const sign = { create: '+', update: '~', delete: '-', issue: '+' }[change.action]
  const head = `${sign} ${change.kind} ${change.name}${change.action === 'issue' ? ' (a key to issue; apply prints it once)' : ''}`
  const lines = change.fields.map(({ field, from, to }) => change.action === 'update'
    ? `    ${field}: ${show(from)} → ${show(to)}`
    : `    ${field}: ${show(to)}`)
  return [head, ...lines].join('\n')
}

function show (value: unknown): string {
  return value === undefined ? '(none)' : JSON.stringify(value)
}

function strip (view: View): View {
  const out: View = {}
  for (const [k, v] of Object.entries(view)) if (!META.has(k)) out[k] = v
  return out
}

/** a kept secret shows the digest the file named (what the node should hold) */
function withKept (view: View, keptDigest: (path: string) => string | undefined, nested: string[] = []): View {
  const keptRef = (value: unknown, path: string): unknown => {
    const sealed = (value as { provider?: string; sealed?: string } | null)
    if (sealed?.provider !== 'inline' || sealed.sealed !== publicDigestOfKeep) return value
    return { provider: 'inline', sealed: keptDigest(path) ?? sealed.sealed }
  }
  const out: View = { ...view }
  for (const [k, v] of Object.entries(out)) out[k] = keptRef(v, k)
  for (const path of nested) {
    const [outer, inner] = path.split('.') as [string, string]
    if (out[outer] !== null && typeof out[outer] === 'object') out[outer] = { ...out[outer], [inner]: keptRef(out[outer][inner], path) }
  }
  return out
}

const publicDigestOfKeep = (publicSecret({ provider: 'inline', ciphertext: KEEP_CIPHERTEXT }) as { sealed: string }).sealed

/** the file's secret fields that keep the node's sealed value (by its digest) */
function keptFields (body: Record<string, unknown>): string[] {
  return Object.entries(body).filter(([field, value]) => {
    const ref = (field === 'tls' ? (value as { ca?: unknown } | null)?.ca : value) as { ciphertext?: string } | null
    return ref?.ciphertext === KEEP_CIPHERTEXT
  }).map(([field]) => field)
}

/**
 * A kept secret (by its digest) cannot be sent: it can only be what the node already holds. The
 * diff shows the difference; applying it is refused, naming what to do
 */
function sendable (body: Record<string, unknown>, what: string, run: Change['run']): Change['run'] {
  const kept = keptFields(body)
  if (kept.length === 0) return run
  return async () => {
    throw new CliError(`${what}: ${kept[0]} keeps a sealed value by its digest, but the node holds another (or none): give its ciphertext (relaykey config seal)`, EXIT.failed)
  }
}

/**
 * A partner field for PATCH. base_urls: the file's, with the environments it dropped set to null;
 * timeouts, retry and circuit_breaker: whole, defaults filled in (the node merges a PATCH onto
 * what it holds); auth and tls as the file has them (a preset by its name)
 */
function partnerPatchValue (field: string, body: Record<string, unknown>, input: View, now: View): unknown {
  if (field === 'base_urls') {
    const urls: Record<string, unknown> = { ...input.base_urls }
    for (const env of Object.keys(now.base_urls ?? {})) if (!(env in urls)) urls[env] = null
    return urls
  }
  if (field === 'auth' || field === 'tls') return body[field] ?? null
  return input[field]
}

const SECRET_FIELDS = new Set(['secret', 'signing_secret', 'client_id', 'client_secret', 'client_cert', 'client_key', 'private_key'])

function diffFields (now: View, want: View): FieldChange[] {
  const fields = new Set([...Object.keys(now), ...Object.keys(want)])
  const out: FieldChange[] = []
  for (const field of fields) {
    if (canonical(now[field] ?? null) !== canonical(want[field] ?? null)) out.push({ field, from: now[field], to: want[field] })
  }
  return out
}

/** a new resource's fields, as they will be: those the file gives (the rest take their defaults) */
function listFields (view: View, skip: string[], given: Record<string, unknown>): FieldChange[] {
  return Object.entries(view).filter(([k, v]) => !skip.includes(k) && v !== null && !META.has(k) && given[k] !== undefined)
    .map(([field, to]) => ({ field, from: undefined, to }))
}

/** JSON with sorted keys: equal values compare equal whatever their key order */
export function canonical (value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : v))
}

function post (path: string, body: Record<string, unknown>): Change['run'] {
  return async (client) => { await client.expect('POST', path, 201, body) }
}

function send (method: string, path: string, status: number, body?: unknown): Change['run'] {
  return async (client) => { await client.expect(method, path, status, body) }
}

function bind (policy: string, partner: string, credentials: string[] | null): Change['run'] {
  return async (client) => {
    let ids: string[] | null = null
    if (credentials !== null) {
      const list = await client.expect<View[]>('GET', `/admin/partners/${encodeURIComponent(partner)}/credentials`, 200)
      ids = credentials.map((name) => list.find((c) => c.name === name)?.id ?? name)
    }
    await client.expect('POST', '/admin/bindings', 201, { policy, partner, ...(ids === null ? {} : { credentials: ids }) })
  }
}
