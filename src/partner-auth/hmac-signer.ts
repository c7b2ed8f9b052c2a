// `hmac` partner auth: every attempt signed with HMAC keyed by the credential's signing secret
// over a canonical string the partner's documentation defines (Sumsub: timestamp + method +
// path with query + body). The parts are fed to the HMAC one by one: the body's bytes are
// never copied into a string.
import { createHmac, randomUUID } from 'node:crypto'
import type { HmacAuth } from '../store/model.js'
import { headerValue, type AttemptSigner } from './attempt-signer.js'

export class HmacSigner implements AttemptSigner {
  readonly signsBody: boolean
  readonly maxBodyBytes: number
  readonly ownedHeaders: ReadonlySet<string>
  readonly #auth: HmacAuth
  readonly #signingSecret: Buffer
  /** the credential's `secret`, for secret_header and a canonical 'secret' part ('' without one) */
  readonly #secret: string
  readonly #secretHeader: string | null
  readonly #secretHeaderValue: string
  readonly #timestampHeader: string | null
  readonly #nonceHeader: string | null
  readonly #signatureHeader: string

  constructor (auth: HmacAuth, signingSecret: string, secret: string | null) {
    this.#auth = auth
    this.#signingSecret = Buffer.from(signingSecret, 'utf8')
    this.#secret = secret ?? ''
    this.signsBody = auth.canonical.includes('body')
    this.maxBodyBytes = auth.max_body_bytes
    this.#secretHeader = auth.secret_header === null ? null : auth.secret_header.name.toLowerCase()
    this.#secretHeaderValue = auth.secret_header === null ? '' : auth.secret_header.prefix + this.#secret
    this.#timestampHeader = auth.timestamp_header?.toLowerCase() ?? null
    this.#nonceHeader = auth.nonce_header?.toLowerCase() ?? null
    this.#signatureHeader = auth.signature_header.toLowerCase()
    this.ownedHeaders = new Set([this.#secretHeader, this.#timestampHeader, this.#nonceHeader, this.#signatureHeader]
      .filter((h): h is string => h !== null))
  }

  ready (): null {
    return null
  }

  refused (): boolean {
    return false
  }

  carriedSecret (): null {
    return null
  }

  sign (method: string, target: string, body: Buffer | null, headers: string[], now: number): void {
    const auth = this.#auth
    const timestamp = auth.timestamp_unit === 's' ? String(Math.floor(now / 1000)) : String(now)
    const nonce = this.#nonceHeader === null ? '' : randomUUID()
    // headers named in the canonical string are the client's or the ones set here: set first
    if (this.#secretHeader !== null) headers.push(this.#secretHeader, this.#secretHeaderValue)
    if (this.#timestampHeader !== null) headers.push(this.#timestampHeader, timestamp)
    if (this.#nonceHeader !== null) headers.push(this.#nonceHeader, nonce)
    const hmac = createHmac(auth.algorithm, this.#signingSecret)
    const parts = auth.canonical
    for (let i = 0; i < parts.length; i++) {
      if (i > 0 && auth.separator !== '') hmac.update(auth.separator)
      const part = parts[i]!
      switch (part) {
        case 'timestamp': hmac.update(timestamp); break
        case 'nonce': hmac.update(nonce); break
        case 'method': hmac.update(method.toUpperCase()); break
        case 'path': hmac.update(target); break
        case 'body': if (body !== null) hmac.update(body); break
        case 'secret': hmac.update(this.#secret); break
        default:
          if ('header' in part) hmac.update(headerValue(headers, part.header.toLowerCase()))
          else hmac.update(part.literal)
      }
    }
    const digest = auth.encoding === 'base64' ? hmac.digest('base64') : hmac.digest('hex')
    headers.push(this.#signatureHeader, auth.signature_prefix + (auth.encoding === 'HEX' ? digest.toUpperCase() : digest))
  }
}
