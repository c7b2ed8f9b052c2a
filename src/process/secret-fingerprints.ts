// Which HMAC pepper and master key a deployment's stores were written with, kept as keyed
// fingerprints (never the secrets). The first node to start records them; a node started with
// another value refuses to start, naming the variable, instead of answering every virtual key
// 401 (another pepper) or failing every inline secret (another master key) in silence.
import { createHmac } from 'node:crypto'
import type { Config } from '../config/config.js'
import type { ControlStore, FingerprintName } from '../store/control-store.js'
import { InlineSecretCipher } from '../secrets/inline-cipher.js'
import { SECRET_PARTS, type StoredSecret } from '../store/model.js'

export class SecretMismatchError extends Error {
  override readonly name = 'SecretMismatchError'
}

/** HMAC-SHA256 of a fixed label under the secret: shows whether two secrets are equal, nothing else */
export function secretFingerprint (secret: Buffer, name: FingerprintName): string {
  return createHmac('sha256', secret).update(`relaykey secret fingerprint v1 ${name}`).digest('hex').slice(0, 32)
}

/** resolves when this node's secrets are the deployment's (recording them if it is the first) */
export async function checkSecretFingerprints (config: Config, store: ControlStore): Promise<void> {
  const hmac = secretFingerprint(config.hmacSecret!, 'hmac_secret')
  const storedHmac = await store.recordFingerprint('hmac_secret', hmac)
  if (storedHmac !== hmac) {
    throw new SecretMismatchError(`RELAYKEY_HMAC_SECRET is not the one this deployment's virtual keys were issued with (fingerprint ${storedHmac} stored, ${hmac} here): every key would be refused 401 invalid_key; start this node with the deployment's value`)
  }
  if (config.masterKey === null) return // inline secrets then show up as unusable in the start-up check
  // Only sealed secrets tie a deployment to its master key: until one is stored, any key will
  // do (embedded mode generates one; an operator may give another before sealing anything).
  const sealed = await firstSealedSecret(store)
  if (sealed === null) return
  const master = secretFingerprint(config.masterKey, 'master_key')
  // before recording it: a deployment from before fingerprints were kept has none stored, and
  // the sealed secret tells whether this is its key
  if (!decrypts(config.masterKey, sealed)) {
    throw new SecretMismatchError('RELAYKEY_MASTER_KEY is not the one this deployment\'s inline secrets were sealed with (a stored inline secret does not decrypt with it): start this node with the deployment\'s value')
  }
  const storedMaster = await store.recordFingerprint('master_key', master)
  if (storedMaster !== master) {
    throw new SecretMismatchError(`RELAYKEY_MASTER_KEY is not the one this deployment's inline secrets were sealed with (fingerprint ${storedMaster} stored, ${master} here): start this node with the deployment's value`)
  }
}

function decrypts (masterKey: Buffer, sealed: string): boolean {
  try {
    new InlineSecretCipher(masterKey).decrypt(sealed)
    return true
  } catch {
    return false
  }
}

async function firstSealedSecret (store: ControlStore): Promise<string | null> {
  const inline = (s: StoredSecret | null | undefined): string | null => s?.provider === 'inline' ? s.ciphertext : null
  for (const partner of await store.listPartners()) {
    const ca = inline(partner.tls?.ca)
    if (ca !== null) return ca
    for (const credential of await store.listCredentials(partner.id)) {
      const found = [credential.secret, ...SECRET_PARTS.map((p) => credential.secret_parts[p])].map(inline).find((c) => c !== null)
      if (found !== undefined) return found
    }
  }
  return null
}
