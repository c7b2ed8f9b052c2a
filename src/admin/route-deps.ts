// What the admin route handlers need, as narrow interfaces: tests and other wirings can pass
// anything with the same shape.
import type { VirtualKeyCodec } from '../keys/virtual-key.js'
import type { InvalidationPublisher } from '../store/invalidation.js'
import type { EgressPolicy } from '../http/egress-policy.js'
import type { InlineSecretCipher } from '../secrets/inline-cipher.js'
import type { ControlStore } from '../store/control-store.js'
import type { ChangeRecorder } from './change-recorder.js'

export type KeyIssuer = Pick<VirtualKeyCodec, 'issue'>
export type SecretSealer = Pick<InlineSecretCipher, 'encrypt' | 'decrypt'>

export interface AdminRouteDeps {
  store: ControlStore
  codec: KeyIssuer
  /** null when no master key is configured: inline secrets are then refused */
  cipher: SecretSealer | null
  /** RELAYKEY_SECRET_FILES_DIR; null: file secrets are refused */
  secretFilesDir: string | null
  /** which partner base URLs may be saved (RELAYKEY_EGRESS_ALLOW, link-local and metadata addresses) */
  egress: EgressPolicy
  invalidations: InvalidationPublisher
  /** every mutation is recorded in the change log */
  changes: ChangeRecorder
  /** milliseconds since the epoch; key status, expiry checks and rotation grace read it */
  now: () => number
}
