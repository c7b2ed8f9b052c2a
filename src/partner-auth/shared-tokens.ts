// Where the access tokens of OAuth2 partners are shared: by every worker of a node and, in
// distributed mode, by every node (Redis; SQLite in embedded mode). One fetch per token
// lifetime for the whole deployment, not one per worker. Tokens are stored encrypted (AES-GCM
// under a key derived from RELAYKEY_HMAC_SECRET), with a short hash beside the ciphertext so a
// token the partner refused can be dropped without dropping a newer one.
import { createHash, createHmac, hkdfSync } from 'node:crypto'
import { InlineSecretCipher } from '../secrets/inline-cipher.js'

export interface CachedToken {
  token: string
  /** epoch ms */
  expiresAt: number
  /** epoch ms from which a fresh token is fetched, while this one still serves */
  refreshAt: number
}

export interface SharedTokens {
  read (id: string): Promise<CachedToken | null>
  /** true: this caller fetches the token, and nobody else may for `ms` (or until write/release) */
  claim (id: string, ms: number): Promise<boolean>
  /** stores the token until it expires and ends the claim */
  write (id: string, token: CachedToken): Promise<void>
  release (id: string): Promise<void>
  /** forgets the token, if it is still `token` */
  drop (id: string, token: string): Promise<void>
  close (): Promise<void>
}

/** the seal the stores keep: `h.<token hash>.<AES-GCM ciphertext>` */
export class TokenSeal {
  readonly #cipher: InlineSecretCipher
  readonly #labelKey: Buffer

  constructor (hmacSecret: Buffer) {
    this.#cipher = new InlineSecretCipher(Buffer.from(hkdfSync('sha256', hmacSecret, 'relaykey', 'oauth2 access token cache', 32)))
    this.#labelKey = Buffer.from(hkdfSync('sha256', hmacSecret, 'relaykey', 'oauth2 access token label', 32))
  }

  /** a short keyed digest of `text` (what identifies a client's tokens in the shared store) */
  label (text: string): string {
    return createHmac('sha256', this.#labelKey).update(text).digest('hex').slice(0, 32)
  }

  seal (token: CachedToken): string {
    return `h.${tokenHash(token.token)}.${this.#cipher.encrypt(JSON.stringify(token))}`
  }

  /** null when it was sealed under another secret or altered */
  open (sealed: string): CachedToken | null {
    const dot = sealed.indexOf('.', 2)
    try {
      const token = JSON.parse(this.#cipher.decrypt(sealed.slice(dot + 1))) as CachedToken
      return typeof token.token === 'string' && typeof token.expiresAt === 'number' && typeof token.refreshAt === 'number' ? token : null
    } catch {
      return null
    }
  }
}

export function tokenHash (token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 32)
}
