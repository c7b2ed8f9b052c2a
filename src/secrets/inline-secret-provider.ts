// Secret stored in the database, sealed with the master key (AES-256-GCM).
import type { StoredSecret } from '../store/model.js'
import type { InlineSecretCipher } from './inline-cipher.js'
import { SecretResolutionError, type SecretProvider } from './secret-provider.js'

type InlineSecret = Extract<StoredSecret, { provider: 'inline' }>

export class InlineSecretProvider implements SecretProvider<InlineSecret> {
  readonly name = 'inline' as const
  readonly #cipher: InlineSecretCipher | null

  constructor (cipher: InlineSecretCipher | null) {
    this.#cipher = cipher
  }

  async resolve (secret: InlineSecret): Promise<string> {
    if (this.#cipher === null) throw new SecretResolutionError('inline secret needs RELAYKEY_MASTER_KEY')
    try {
      return this.#cipher.decrypt(secret.ciphertext)
    } catch {
      throw new SecretResolutionError('inline secret cannot be decrypted with this master key')
    }
  }
}
