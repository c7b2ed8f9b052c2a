// Secret held in an environment variable of the RelayKey process.
import type { StoredSecret } from '../store/model.js'
import { SecretResolutionError, type SecretProvider } from './secret-provider.js'

type EnvSecret = Extract<StoredSecret, { provider: 'env' }>

export class EnvSecretProvider implements SecretProvider<EnvSecret> {
  readonly name = 'env' as const
  readonly #env: Record<string, string | undefined>

  constructor (env: Record<string, string | undefined> = process.env) {
    this.#env = env
  }

  async resolve (secret: EnvSecret): Promise<string> {
    const value = this.#env[secret.ref]
    if (value === undefined || value === '') throw new SecretResolutionError(`environment variable ${secret.ref} is not set`)
    return value
  }
}
