// The secret providers a node resolves partner secrets with, from its configuration: the same
// in the workers (key contexts) and the primary (the misconfiguration check).
import type { Config } from '../config/config.js'
import { EnvSecretProvider } from '../secrets/env-secret-provider.js'
import { FileSecretProvider } from '../secrets/file-secret-provider.js'
import { InlineSecretCipher } from '../secrets/inline-cipher.js'
import { InlineSecretProvider } from '../secrets/inline-secret-provider.js'
import { SecretResolver } from '../secrets/secret-resolver.js'

export function secretsOfConfig (config: Config): SecretResolver {
  return new SecretResolver([
    new EnvSecretProvider(),
    new FileSecretProvider(config.secretFilesDir),
    new InlineSecretProvider(config.masterKey === null ? null : new InlineSecretCipher(config.masterKey)),
  ])
}
