// AES-256-GCM for inline upstream secrets at rest: `v1.<iv>.<tag>.<ciphertext>` (base64url).
// A fresh 96-bit IV per value; the tag makes any alteration of the stored value fail loudly.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'

const VERSION = 'v1'

export class InlineSecretCipher {
  readonly #key: Buffer

  constructor (masterKey: Buffer) {
    if (masterKey.length !== 32) throw new RangeError('the master key must be exactly 32 bytes')
    this.#key = masterKey
  }

  encrypt (plaintext: string): string {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv)
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return [VERSION, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ciphertext.toString('base64url')].join('.')
  }

  /** throws when the value was altered or encrypted under another master key */
  decrypt (sealed: string): string {
    const [version, iv, tag, ciphertext] = sealed.split('.')
    if (version !== VERSION || iv === undefined || tag === undefined || ciphertext === undefined) {
      throw new Error('inline secret: unknown format')
    }
    const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'))
    decipher.setAuthTag(Buffer.from(tag, 'base64url'))
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8')
  }
}
