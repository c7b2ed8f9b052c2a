// Picks the provider for a stored secret. Runs on key-context loads, never per request.
import type { StoredSecret } from '../store/model.js'
import { SecretResolutionError, type SecretProvider } from './secret-provider.js'

export class SecretResolver {
  readonly #providers: Map<string, SecretProvider>

  constructor (providers: SecretProvider<any>[]) {
    this.#providers = new Map(providers.map((p) => [p.name, p as SecretProvider]))
  }

  resolve (secret: StoredSecret): Promise<string> {
    const provider = this.#providers.get(secret.provider)
    if (provider === undefined) return Promise.reject(new SecretResolutionError(`no secret provider ${secret.provider}`))
    return provider.resolve(secret)
  }
}
