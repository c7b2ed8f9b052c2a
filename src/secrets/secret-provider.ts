// Where an upstream secret comes from. Each provider resolves one kind of StoredSecret;
// a Vault or cloud secret-manager provider is one more implementation of this interface.
import type { StoredSecret } from '../store/model.js'

export interface SecretProvider<S extends StoredSecret = StoredSecret> {
  readonly name: S['provider']
  /** the plaintext secret; rejects with a message that never contains the secret */
  resolve (secret: S): Promise<string>
}

export class SecretResolutionError extends Error {
  override readonly name = 'SecretResolutionError'
}
