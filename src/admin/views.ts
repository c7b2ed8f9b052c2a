// How records leave the admin API: credentials without their secret material, keys with a
// computed status, bindings with the partner's slug beside its id.
import type { Binding, Credential, StoredSecret, VirtualKey } from '../store/model.js'

export type KeyStatus = 'active' | 'revoked' | 'expired'

export type PublicSecret = { provider: 'env'; ref: string } | { provider: 'file'; ref: string } | { provider: 'inline' }

export type CredentialView = Omit<Credential, 'secret'> & { secret: PublicSecret }
export type KeyView = VirtualKey & { status: KeyStatus }
export type BindingView = Binding & { partner: string | null }

/** Env and file references are configuration, not secrets; inline ciphertext never leaves. */
export function publicSecret (secret: StoredSecret): PublicSecret {
  switch (secret.provider) {
    case 'env': return { provider: 'env', ref: secret.ref }
    case 'file': return { provider: 'file', ref: secret.ref }
    case 'inline': return { provider: 'inline' }
  }
}

export function credentialView (credential: Credential): CredentialView {
  return { ...credential, secret: publicSecret(credential.secret) }
}

export function keyStatus (key: VirtualKey, now: number): KeyStatus {
  if (key.revoked_at !== null) return 'revoked'
  if (key.expires_at !== null && Date.parse(key.expires_at) <= now) return 'expired'
  return 'active'
}

export function keyView (key: VirtualKey, now: number): KeyView {
  return { ...key, status: keyStatus(key, now) }
}

/** `partnerSlug` is null only if the partner vanished between two reads. */
export function bindingView (binding: Binding, partnerSlug: string | null): BindingView {
  return { ...binding, partner: partnerSlug }
}
