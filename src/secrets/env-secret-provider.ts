// Secret held in an environment variable of the RelayKey process.
import type { StoredSecret } from '../store/model.js'
import { SecretResolutionError, type SecretProvider } from './secret-provider.js'

type EnvSecret = Extract<StoredSecret, { provider: 'env' }>

/**
 * RelayKey's own settings: its admin token, HMAC pepper, master key and store URLs must never
 * be sent to a partner, whoever holds the admin token
 */
export function isRelayKeySetting (name: string): boolean {
  return name.startsWith('RELAYKEY_') || name === 'DATABASE_URL' || name === 'REDIS_URL'
}

export class EnvSecretProvider implements SecretProvider<EnvSecret> {
  readonly name = 'env' as const
  readonly #env: Record<string, string | undefined>

  constructor (env: Record<string, string | undefined> = process.env) {
    this.#env = env
  }

  async resolve (secret: EnvSecret): Promise<string> {
    // refused at the admin API; a row stored before that rule still never resolves
    if (isRelayKeySetting(secret.ref)) throw new SecretResolutionError(`environment variable ${secret.ref} is RelayKey's own setting, not a partner secret`)
    const value = this.#env[secret.ref]
    if (value === undefined || value === '') throw new SecretResolutionError(`environment variable ${secret.ref} is not set`)
    return value
  }
}
