// A secret reference as the admin API accepts it: an environment variable, a file under
// RELAYKEY_SECRET_FILES_DIR, or an inline value encrypted here, where it enters, so nothing
// behind this point (store, logs, responses) ever holds the plaintext.
import { secretFileRefProblem } from '../secrets/secret-files-dir.js'
import { isRelayKeySetting } from '../secrets/env-secret-provider.js'
import { ValidationError } from '../errors.js'
import type { StoredSecret } from '../store/model.js'
import { child } from '../validation/field-path.js'
import { matching, object, onlyFields, string } from '../validation/json-value.js'
import type { SecretSealer } from './route-deps.js'

/** what saving a secret needs: the cipher for inline values, the directory file references must be under */
export interface SecretRules {
  cipher: SecretSealer | null
  filesDir: string | null
}

const REF_FIELDS = new Set(['provider', 'ref'])
const INLINE_FIELDS = new Set(['provider', 'value', 'ciphertext'])
/** what InlineSecretCipher.encrypt writes: v1.<iv>.<tag>.<ciphertext>, base64url */
const SEALED = /^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{1,90000}$/
const ENV_VAR = /^[A-Za-z_][A-Za-z0-9_]{0,254}$/
const MAX_INLINE_SECRET = 64 * 1024
/** control characters (tab is the one a header value may hold) and unpaired surrogates */
const UNSENDABLE = /[\x00-\x08\x0a-\x1f\x7f]|\p{Cs}/u
/** PEM (certificates, private keys, CA bundles) has line breaks; nothing else of the kind */
const NOT_PEM = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\p{Cs}/u

/** `pem`: the value is PEM text (line breaks allowed), not something sent in a header */
export function secretReference (value: unknown, field: string, { cipher, filesDir }: SecretRules, pem = false): StoredSecret {
  if (value === undefined || value === null) throw new ValidationError(field, 'is required')
  const o = object(value, field)
  switch (o.provider) {
    case 'env': {
      onlyFields(o, REF_FIELDS, field)
      const ref = matching(o.ref, child(field, 'ref'), ENV_VAR, 'an environment variable name')
      if (isRelayKeySetting(ref)) throw new ValidationError(child(field, 'ref'), "names one of RelayKey's own settings (RELAYKEY_*, DATABASE_URL, REDIS_URL), which never go to a partner")
      return { provider: 'env', ref }
    }
    case 'file': {
      onlyFields(o, REF_FIELDS, field)
      const ref = string(o.ref, child(field, 'ref'), 4096)
      if (!ref.startsWith('/') || ref.includes('\u0000')) throw new ValidationError(child(field, 'ref'), 'must be an absolute file path')
      const problem = secretFileRefProblem(ref, filesDir)
      if (problem !== null) throw new ValidationError(child(field, 'ref'), problem)
      return { provider: 'file', ref }
    }
    case 'inline': {
      onlyFields(o, INLINE_FIELDS, field)
      if (o.ciphertext !== undefined) return sealedReference(o, field, cipher, pem)
      const plaintext = string(o.value, child(field, 'value'), MAX_INLINE_SECRET)
      if (pem) {
        if (NOT_PEM.test(plaintext)) throw new ValidationError(child(field, 'value'), 'must be PEM text (no control characters other than line breaks)')
      } else if (UNSENDABLE.test(plaintext)) {
        // no header or query string can carry these: every request would fail at the partner
        throw new ValidationError(child(field, 'value'), 'must not contain control characters (CR, LF, NUL, …) or unpaired surrogates')
      }
      if (cipher === null) {
        throw new ValidationError(field, 'inline secrets are encrypted at rest and need RELAYKEY_MASTER_KEY to be set; use the env or file provider otherwise')
      }
      return { provider: 'inline', ciphertext: cipher.encrypt(plaintext) }
    }
    default:
      throw new ValidationError(child(field, 'provider'), "must be 'env', 'file' or 'inline'")
  }
}

/**
 * An inline secret given already sealed (`relaykey config seal`, for config files kept in git):
 * stored as given once it opens under this node's master key and holds a value its use allows.
 */
function sealedReference (o: Record<string, unknown>, field: string, cipher: SecretSealer | null, pem: boolean): StoredSecret {
  if (o.value !== undefined) throw new ValidationError(field, 'give value or ciphertext, not both')
  const sealed = string(o.ciphertext, child(field, 'ciphertext'), 100_000)
  if (cipher === null) throw new ValidationError(field, 'inline secrets need RELAYKEY_MASTER_KEY to be set on the node')
  let plaintext: string
  try {
    if (!SEALED.test(sealed)) throw new Error('format')
    plaintext = cipher.decrypt(sealed)
  } catch {
    throw new ValidationError(child(field, 'ciphertext'), 'does not open under this node\'s master key (seal it with relaykey config seal on a machine with the same RELAYKEY_MASTER_KEY)')
  }
  if (plaintext === '' || (pem ? NOT_PEM : UNSENDABLE).test(plaintext)) {
    throw new ValidationError(child(field, 'ciphertext'), pem ? 'holds a value that is not PEM text' : 'holds a value with control characters or unpaired surrogates')
  }
  return { provider: 'inline', ciphertext: sealed }
}
