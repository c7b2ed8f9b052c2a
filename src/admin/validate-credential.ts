// Credential bodies (docs/admin-api.md): the upstream secret a partner's requests carry. Inline
// secret values are encrypted here, where they enter, so nothing behind this point (store,
// logs, responses) ever holds the plaintext.
import { secretFileRefProblem } from '../secrets/secret-files-dir.js'
import { ValidationError } from '../errors.js'
import type { Credential, CredentialInput, Partner, StoredSecret } from '../store/model.js'
import { bodyObject, child, integer, label, matching, object, onlyFields, string } from './validate.js'
import { ENVIRONMENT, ENVIRONMENT_SHAPE } from './validate-partner.js'
import { rateLimit } from './validate-rate-limit.js'
import type { SecretSealer } from './route-deps.js'
import { isRelayKeySetting } from '../secrets/env-secret-provider.js'

const FIELDS = new Set(['name', 'environment', 'secret', 'weight', 'rate_limit'])
const ENV_SECRET_FIELDS = new Set(['provider', 'ref'])
const INLINE_SECRET_FIELDS = new Set(['provider', 'value'])
const ENV_VAR = /^[A-Za-z_][A-Za-z0-9_]{0,254}$/
const MAX_INLINE_SECRET = 64 * 1024
/** control characters (tab is the one a header value may hold) and unpaired surrogates */
const UNSENDABLE = /[\x00-\x08\x0a-\x1f\x7f]|\p{Cs}/u

/** what saving a secret needs: the cipher for inline values, the directory file references must be under */
export interface SecretRules {
  cipher: SecretSealer | null
  filesDir: string | null
}

export function parseCredentialCreate (body: unknown, partner: Partner, rules: SecretRules): CredentialInput {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  return {
    name: label(b.name, 'name'),
    environment: environment(b.environment, partner),
    secret: secret(b.secret, rules),
    weight: b.weight === undefined || b.weight === null ? 1 : weight(b.weight),
    rate_limit: rateLimit(b.rate_limit, 'rate_limit'),
  }
}

/** Only the fields present; the environment is fixed for a credential's life. */
export function parseCredentialPatch (body: unknown, current: Credential, rules: SecretRules): Partial<CredentialInput> {
  const b = bodyObject(body)
  onlyFields(b, FIELDS, '')
  // Bindings and keys picked this credential for its environment; moving it would silently
  // reroute their traffic. Repeating the current value is harmless.
  if (b.environment !== undefined && b.environment !== current.environment) {
    throw new ValidationError('environment', 'cannot be changed; create a credential for the other environment instead')
  }
  const patch: Partial<CredentialInput> = {}
  if (b.name !== undefined) patch.name = label(b.name, 'name')
  if (b.secret !== undefined) patch.secret = secret(b.secret, rules)
  if (b.weight !== undefined) patch.weight = b.weight === null ? 1 : weight(b.weight)
  if (b.rate_limit !== undefined) patch.rate_limit = rateLimit(b.rate_limit, 'rate_limit')
  return patch
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

function secret (value: unknown, { cipher, filesDir }: SecretRules): StoredSecret {
  if (value === undefined || value === null) throw new ValidationError('secret', 'is required')
  const o = object(value, 'secret')
  switch (o.provider) {
    case 'env': {
      onlyFields(o, ENV_SECRET_FIELDS, 'secret')
      const ref = matching(o.ref, 'secret.ref', ENV_VAR, 'an environment variable name')
      if (isRelayKeySetting(ref)) throw new ValidationError('secret.ref', "names one of RelayKey's own settings (RELAYKEY_*, DATABASE_URL, REDIS_URL), which never go to a partner")
      return { provider: 'env', ref }
    }
    case 'file': {
      onlyFields(o, ENV_SECRET_FIELDS, 'secret')
      const ref = string(o.ref, 'secret.ref', 4096)
      if (!ref.startsWith('/') || ref.includes('\u0000')) throw new ValidationError('secret.ref', 'must be an absolute file path')
      const problem = secretFileRefProblem(ref, filesDir)
      if (problem !== null) throw new ValidationError('secret.ref', problem)
      return { provider: 'file', ref }
    }
    case 'inline': {
      onlyFields(o, INLINE_SECRET_FIELDS, 'secret')
      const plaintext = string(o.value, child('secret', 'value'), MAX_INLINE_SECRET)
      // no header or query string can carry these: every request would fail at the partner
      if (UNSENDABLE.test(plaintext)) {
        throw new ValidationError('secret.value', 'must not contain control characters (CR, LF, NUL, …) or unpaired surrogates')
      }
      if (cipher === null) {
        throw new ValidationError('secret', 'inline secrets are encrypted at rest and need RELAYKEY_MASTER_KEY to be set; use the env or file provider otherwise')
      }
      return { provider: 'inline', ciphertext: cipher.encrypt(plaintext) }
    }
    default:
      throw new ValidationError('secret.provider', "must be 'env', 'file' or 'inline'")
  }
}
