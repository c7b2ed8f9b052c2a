// Credential bodies (docs/admin-api.md): the upstream secret a partner's requests carry, and the
// other secret parts its auth may need (a signing key, a client id and secret, a client
// certificate and key, a private key), each a secret reference of its own.
import { ValidationError } from '../errors.js'
import { SECRET_PARTS, type Credential, type CredentialInput, type Partner, type SecretPart, type SecretParts, type StoredSecret } from '../store/model.js'
import { bodyObject } from './validate.js'
import { integer, label, matching, onlyFields } from '../validation/json-value.js'
import { ENVIRONMENT, ENVIRONMENT_SHAPE } from './validate-partner.js'
import { requiredParts } from './validate-partner-auth.js'
import { rateLimit } from './validate-rate-limit.js'
import { secretReference, type SecretRules } from './validate-secret.js'

export type { SecretRules } from './validate-secret.js'

const FIELDS = new Set<string>(['name', 'environment', 'secret', 'weight', 'rate_limit', ...SECRET_PARTS])
/** parts holding PEM text */
const PEM_PARTS = new Set<SecretPart>(['client_cert', 'client_key', 'private_key'])

export function parseCredentialCreate (body: unknown, partner: Partner, rules: SecretRules): CredentialInput {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  const input: CredentialInput = {
    name: label(b.name, 'name'),
    environment: environment(b.environment, partner),
    secret: b.secret === undefined || b.secret === null ? null : secretReference(b.secret, 'secret', rules),
    secret_parts: parts(b, {}, rules),
    weight: b.weight === undefined || b.weight === null ? 1 : weight(b.weight),
    rate_limit: rateLimit(b.rate_limit, 'rate_limit'),
  }
  checkParts(input.secret, input.secret_parts, partner)
  return input
}

/** Only the fields present; the environment is fixed for a credential's life. A part set to null is removed. */
export function parseCredentialPatch (body: unknown, current: Credential, partner: Partner, rules: SecretRules): Partial<CredentialInput> {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  // Bindings and keys picked this credential for its environment; moving it would silently
  // reroute their traffic. Repeating the current value is harmless.
  if (b.environment !== undefined && b.environment !== current.environment) {
    throw new ValidationError('environment', 'cannot be changed; create a credential for the other environment instead')
  }
  const patch: Partial<CredentialInput> = {}
  if (b.name !== undefined) patch.name = label(b.name, 'name')
  if (b.secret !== undefined) patch.secret = b.secret === null ? null : secretReference(b.secret, 'secret', rules)
  if (SECRET_PARTS.some((part) => b[part] !== undefined)) patch.secret_parts = parts(b, current.secret_parts, rules)
  if (b.weight !== undefined) patch.weight = b.weight === null ? 1 : weight(b.weight)
  if (b.rate_limit !== undefined) patch.rate_limit = rateLimit(b.rate_limit, 'rate_limit')
  if (patch.secret !== undefined || patch.secret_parts !== undefined) {
    checkParts(patch.secret === undefined ? current.secret : patch.secret, patch.secret_parts ?? current.secret_parts, partner)
  }
  return patch
}

function parts (b: Record<string, unknown>, current: SecretParts, rules: SecretRules): SecretParts {
  const result: SecretParts = { ...current }
  for (const part of SECRET_PARTS) {
    const value = b[part]
    if (value === undefined) continue
    if (value === null) delete result[part]
    else result[part] = secretReference(value, part, rules, PEM_PARTS.has(part))
  }
  return result
}

/** a credential the partner's auth could not use is refused, naming the missing part */
function checkParts (secret: StoredSecret | null, parts: SecretParts, partner: Partner): void {
  const needs = requiredParts(partner.auth)
  if (needs.secret && secret === null) throw new ValidationError('secret', `is required by partner '${partner.slug}' (auth ${partner.auth.type})`)
  for (const part of needs.parts) {
    if (parts[part as SecretPart] === undefined) throw new ValidationError(part, `is required by partner '${partner.slug}' (auth ${partner.auth.type})`)
  }
}

function environment (value: unknown, partner: Partner): string {
  const env = matching(value, 'environment', ENVIRONMENT, ENVIRONMENT_SHAPE)
  if (!Object.hasOwn(partner.base_urls, env)) {
    const known = Object.keys(partner.base_urls).join(', ')
    throw new ValidationError('environment', `partner '${partner.slug}' has no base URL for '${env}' (it has: ${known})`)
  }
  return env
}

function weight (value: unknown): number {
  return integer(value, 'weight', 1, 1000)
}
