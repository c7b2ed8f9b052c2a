// What a config file asks for, checked the way the admin API checks it (the same validators),
// with every reference resolved inside the file: a credential's partner, a binding's policy,
// partner and credentials, a key's policy. Any problem is a ConfigFileError naming the file, the
// line and the field. Secrets are references only (env, file, or an inline ciphertext sealed
// with `relaykey config seal`); `{"provider":"inline","sealed":"<digest>"}` (what export writes)
// keeps the sealed value the node holds.
import { ValidationError } from '../errors.js'
import { parseBindingCreate } from '../admin/validate-binding.js'
import { parseCredentialCreate } from '../admin/validate-credential.js'
import { parseKeyCreate, type KeyRequest } from '../admin/validate-key.js'
import { parsePartnerCreate } from '../admin/validate-partner.js'
import { parsePolicyCreate } from '../admin/validate-policy.js'
import type { SecretRules } from '../admin/validate-secret.js'
import { SECRET_PARTS, type CredentialInput, type Partner, type PartnerInput, type PolicyInput } from '../store/model.js'
import { ConfigFile, type FieldPath } from './config-file.js'

export const SECTIONS = ['partners', 'credentials', 'policies', 'bindings', 'keys'] as const

/** a file's sealed value to keep: stands in for the ciphertext while validating */
export const KEEP_CIPHERTEXT = 'v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.keep'

export interface DesiredPartner { index: number; input: PartnerInput; body: Record<string, unknown> }
export interface DesiredCredential { index: number; partner: string; input: CredentialInput; body: Record<string, unknown> }
export interface DesiredPolicy { index: number; input: PolicyInput; body: Record<string, unknown> }
export interface DesiredBinding { index: number; policy: string; partner: string; credentials: string[] | null }
export interface DesiredKey { index: number; request: KeyRequest }

export interface DesiredState {
  file: ConfigFile
  partners: DesiredPartner[]
  credentials: DesiredCredential[]
  policies: DesiredPolicy[]
  bindings: DesiredBinding[]
  keys: DesiredKey[]
  /** secret fields the file keeps as the node holds them: "partner/credential/field" or "partner//tls.ca" → the digest */
  kept: Map<string, string>
}

/** validation as the admin API does it, minus what only the node can judge (the master key, the secrets directory) */
const LOCAL_RULES: SecretRules = {
  cipher: { encrypt: () => { throw new Error('a config file holds no secret values') }, decrypt: () => 'sealed value' },
  filesDir: '/',
}

export function desiredState (file: ConfigFile): DesiredState {
  const root = file.body
  if (root === null || typeof root !== 'object' || Array.isArray(root)) throw file.error([], 'the file must be a mapping with partners, credentials, policies, bindings and keys')
  for (const key of Object.keys(root)) {
    if (!(SECTIONS as readonly string[]).includes(key)) throw file.error([key], `unknown section (the sections are ${SECTIONS.join(', ')})`)
  }
  const section = (name: typeof SECTIONS[number]): Array<Record<string, unknown>> => {
    const value = (root as Record<string, unknown>)[name]
    if (value === undefined || value === null) return []
    if (!Array.isArray(value)) throw file.error([name], 'must be a list')
    value.forEach((entry, i) => {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw file.error([name, i], 'must be a mapping')
    })
    return value as Array<Record<string, unknown>>
  }
  const kept = new Map<string, string>()
  const state: DesiredState = { file, partners: [], credentials: [], policies: [], bindings: [], keys: [], kept }

  const partners = new Map<string, Partner>()
  section('partners').forEach((entry, i) => {
    const body = { ...entry }
    if (body.tls !== undefined && body.tls !== null && typeof body.tls === 'object') {
      body.tls = { ...body.tls as object, ca: secretRef(file, ['partners', i, 'tls', 'ca'], (body.tls as Record<string, unknown>).ca, (digest) => kept.set(`${String(entry.slug)}//tls.ca`, digest)) }
    }
    const input = validated(file, ['partners', i], () => parsePartnerCreate(body, LOCAL_RULES))
    if (partners.has(input.slug)) throw file.error(['partners', i, 'slug'], `partner '${input.slug}' is listed twice`)
    partners.set(input.slug, { ...input, id: '', created_at: '', updated_at: '' })
    state.partners.push({ index: i, input, body })
  })

  const credentialNames = new Map<string, Set<string>>()
  section('credentials').forEach((entry, i) => {
    const { partner: slug, ...rest } = entry
    if (typeof slug !== 'string') throw file.error(['credentials', i, 'partner'], 'is required: the slug of a partner in this file')
    const partner = partners.get(slug)
    if (partner === undefined) throw file.error(['credentials', i, 'partner'], `no partner '${slug}' in this file`)
    const body: Record<string, unknown> = { ...rest }
    const credentialKept = new Map<string, string>()
    for (const field of ['secret', ...SECRET_PARTS]) {
      if (body[field] !== undefined && body[field] !== null) {
        body[field] = secretRef(file, ['credentials', i, field], body[field], (digest) => credentialKept.set(field, digest))
      }
    }
    const input = validated(file, ['credentials', i], () => parseCredentialCreate(body, partner, LOCAL_RULES))
    const names = credentialNames.get(slug) ?? new Set()
    if (names.has(input.name)) throw file.error(['credentials', i, 'name'], `partner '${slug}' has a credential '${input.name}' listed twice`)
    names.add(input.name)
    credentialNames.set(slug, names)
    for (const [field, digest] of credentialKept) kept.set(`${slug}/${input.name}/${field}`, digest)
    state.credentials.push({ index: i, partner: slug, input, body })
  })

  const policyNames = new Set<string>()
  section('policies').forEach((entry, i) => {
    const input = validated(file, ['policies', i], () => parsePolicyCreate(entry))
    if (policyNames.has(input.name)) throw file.error(['policies', i, 'name'], `policy '${input.name}' is listed twice`)
    policyNames.add(input.name)
    state.policies.push({ index: i, input, body: entry })
  })

  const bound = new Set<string>()
  section('bindings').forEach((entry, i) => {
    const request = validated(file, ['bindings', i], () => parseBindingCreate(entry))
    if (!policyNames.has(request.policy)) throw file.error(['bindings', i, 'policy'], `no policy '${request.policy}' in this file`)
    if (!partners.has(request.partner)) throw file.error(['bindings', i, 'partner'], `no partner '${request.partner}' in this file`)
    request.credentials?.forEach((name, c) => {
      if (credentialNames.get(request.partner)?.has(name) !== true) throw file.error(['bindings', i, 'credentials', c], `partner '${request.partner}' has no credential '${name}' in this file`)
    })
    const id = `${request.policy}/${request.partner}`
    if (bound.has(id)) throw file.error(['bindings', i], `policy '${request.policy}' is bound to partner '${request.partner}' twice`)
    bound.add(id)
    state.bindings.push({ index: i, ...request })
  })

  section('keys').forEach((entry, i) => {
    // an expiry is judged when the key is to be issued (config-plan.ts): one issued long ago
    // with an expiry now past is no error in the file
    const request = validated(file, ['keys', i], () => parseKeyCreate(entry, 0))
    if (!policyNames.has(request.policy)) throw file.error(['keys', i, 'policy'], `no policy '${request.policy}' in this file`)
    state.keys.push({ index: i, request })
  })
  return state
}

/** an admin validator's ValidationError, as a ConfigFileError at the entry's field */
function validated<T> (file: ConfigFile, at: FieldPath, parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err
    const field = err.field === 'body' ? [] : fieldPath(err.field)
    throw file.error([...at, ...field], err.message.slice(err.field.length + 2))
  }
}

/** `auth.canonical[1].header` → ['auth', 'canonical', 1, 'header'] */
function fieldPath (field: string): FieldPath {
  const out: FieldPath = []
  for (const part of field.split('.')) {
    const m = /^([^[]*)((?:\[\d+\])*)$/.exec(part)
    if (m === null) { out.push(part); continue }
    if (m[1] !== '') out.push(m[1]!)
    for (const index of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(index[1]))
  }
  return out
}

/**
 * A secret reference as a file may hold it: env, file, an inline ciphertext, or the inline value
 * the node holds (by its digest). Never a value.
 */
function secretRef (file: ConfigFile, at: FieldPath, value: unknown, keep: (digest: string) => void): unknown {
  if (value === null || typeof value !== 'object' || (value as Record<string, unknown>).provider !== 'inline') return value
  const ref = value as Record<string, unknown>
  if (ref.value !== undefined) throw file.error([...at, 'value'], 'a config file holds no secret values: seal it (relaykey config seal) or reference an env var or file')
  if (ref.sealed !== undefined) {
    if (typeof ref.sealed !== 'string' || !/^[0-9a-f]{16}$/.test(ref.sealed) || Object.keys(ref).length !== 2) {
      throw file.error([...at, 'sealed'], 'must be the 16 hex digits the admin API shows, alone beside provider')
    }
    keep(ref.sealed)
    return { provider: 'inline', ciphertext: KEEP_CIPHERTEXT }
  }
  if (ref.ciphertext === undefined) throw file.error(at, 'an inline secret needs its ciphertext (relaykey config seal), or the sealed digest of the value the node holds')
  return value
}
