// `jwt` partner auth: a short-lived JWT per attempt (RS256 or ES256) signed with the credential's
// private key, carrying the request's path with query, a fresh nonce, iat/exp and the body's
// SHA-256, as custody APIs (Fireblocks and the like) require.
import { createHash, createPrivateKey, randomUUID, sign, type KeyObject } from 'node:crypto'
import type { JwtAuth } from '../store/model.js'
import { headerValue, type AttemptSigner } from './attempt-signer.js'

export class JwtSigner implements AttemptSigner {
  readonly signsBody: boolean
  readonly maxBodyBytes: number
  readonly ownedHeaders: ReadonlySet<string>
  readonly #auth: JwtAuth
  readonly #key: KeyObject
  readonly #secret: string
  readonly #header: string
  readonly #secretHeader: string | null
  readonly #encodedHeader: string

  /** throws when the key is not one the algorithm signs with (the credential is then left out) */
  constructor (auth: JwtAuth, privateKeyPem: string, secret: string | null) {
    this.#auth = auth
    this.#key = createPrivateKey(privateKeyPem)
    const kind = this.#key.asymmetricKeyType
    if (auth.algorithm === 'RS256' && kind !== 'rsa') throw new Error('private_key is not an RSA key, which RS256 needs')
    if (auth.algorithm === 'ES256' && (kind !== 'ec' || this.#key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')) {
      throw new Error('private_key is not a P-256 EC key, which ES256 needs')
    }
    this.#secret = secret ?? ''
    this.signsBody = auth.body_hash_claim !== null
    this.maxBodyBytes = auth.max_body_bytes
    this.#header = auth.header.name.toLowerCase()
    this.#secretHeader = auth.secret_header === null ? null : auth.secret_header.name.toLowerCase()
    this.ownedHeaders = new Set(this.#secretHeader === null ? [this.#header] : [this.#header, this.#secretHeader])
    const header: Record<string, string> = { alg: auth.algorithm, typ: 'JWT' }
    if (auth.key_id !== null) header.kid = auth.key_id
    this.#encodedHeader = base64url(JSON.stringify(header))
  }

  ready (): null {
    return null
  }

  refused (): boolean {
    return false
  }

  /** the token: it carries the API key in `sub` (base64url), so an echo of it is redacted */
  carriedSecret (sent: readonly string[]): string | null {
    const value = headerValue(sent, this.#header)
    return value === '' ? null : value.slice(this.#auth.header.prefix.length)
  }

  sign (_method: string, target: string, body: Buffer | null, headers: string[], now: number): void {
    const auth = this.#auth
    const iat = Math.floor(now / 1000)
    const claims: Record<string, unknown> = { ...auth.claims, iat, exp: iat + auth.expires_in_seconds }
    if (auth.path_claim !== null) claims[auth.path_claim] = target
    if (auth.nonce_claim !== null) claims[auth.nonce_claim] = randomUUID()
    if (auth.subject_is_secret) claims.sub = this.#secret
    if (auth.body_hash_claim !== null) claims[auth.body_hash_claim] = createHash('sha256').update(body ?? EMPTY).digest('hex')
    const signingInput = this.#encodedHeader + '.' + base64url(JSON.stringify(claims))
    const signature = auth.algorithm === 'RS256'
      ? sign('sha256', Buffer.from(signingInput), this.#key)
      : sign('sha256', Buffer.from(signingInput), { key: this.#key, dsaEncoding: 'ieee-p1363' })
    if (this.#secretHeader !== null) headers.push(this.#secretHeader, auth.secret_header!.prefix + this.#secret)
    headers.push(this.#header, auth.header.prefix + signingInput + '.' + signature.toString('base64url'))
  }
}

const EMPTY = Buffer.alloc(0)

function base64url (text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url')
}
