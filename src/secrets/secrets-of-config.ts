// The secret providers a node resolves partner secrets with, from its configuration: the same
// in the workers (key contexts) and the primary (the misconfiguration check).
import type { Config } from '../config/config.js'
import { EnvSecretProvider } from './env-secret-provider.js'
import { FileSecretProvider } from './file-secret-provider.js'
import { InlineSecretCipher } from './inline-cipher.js'
import { InlineSecretProvider } from './inline-secret-provider.js'
import { SecretResolver } from './secret-resolver.js'

export function secretsOfConfig (config: Config): SecretResolver {
  return new SecretResolver([
    new EnvSecretProvider(),
    new FileSecretProvider(config.secretFilesDir),
    new InlineSecretProvider(config.masterKey === null ? null : new InlineSecretCipher(config.masterKey)),
  ])
}
