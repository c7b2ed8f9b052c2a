// How records leave the admin API: credentials (and a partner's CA) without their secret
// material, keys with a computed status, bindings with the partner's slug beside its id.
import { createHash } from 'node:crypto'
import { SECRET_PARTS, type Binding, type Credential, type Partner, type SecretPart, type StoredSecret, type VirtualKey } from '../store/model.js'

export type KeyStatus = 'active' | 'revoked' | 'expired'

/** inline: `sealed` is a digest of the stored ciphertext (never of the value), so a config file's sealed value can be compared */
export type PublicSecret = { provider: 'env'; ref: string } | { provider: 'file'; ref: string } | { provider: 'inline'; sealed: string }

/** the secret parts are siblings of `secret`, each shown by reference only */
export type CredentialView = Omit<Credential, 'secret' | 'secret_parts'> & { secret: PublicSecret | null } & Partial<Record<SecretPart, PublicSecret>>
export type PartnerView = Omit<Partner, 'tls'> & { tls: { ca: PublicSecret } | null }
export type KeyView = VirtualKey & { status: KeyStatus }
export type BindingView = Binding & { partner: string | null }

/** Env and file references are configuration, not secrets; inline ciphertext never leaves. */
export function publicSecret (secret: StoredSecret): PublicSecret {
  switch (secret.provider) {
    case 'env': return { provider: 'env', ref: secret.ref }
    case 'file': return { provider: 'file', ref: secret.ref }
    case 'inline': return { provider: 'inline', sealed: sealedDigest(secret.ciphertext) }
  }
}

/** the first 16 hex digits of the SHA-256 of a sealed value: which ciphertext is stored, nothing of what it holds */
export function sealedDigest (ciphertext: string): string {
  return createHash('sha256').update(ciphertext).digest('hex').slice(0, 16)
}

export function credentialView (credential: Credential): CredentialView {
  const { secret_parts: parts, ...rest } = credential
  const view: CredentialView = { ...rest, secret: credential.secret === null ? null : publicSecret(credential.secret) }
  for (const part of SECRET_PARTS) {
    const stored = parts[part]
    if (stored !== undefined) view[part] = publicSecret(stored)
  }
  return view
}

export function partnerView (partner: Partner): PartnerView {
  return { ...partner, tls: partner.tls === null ? null : { ca: publicSecret(partner.tls.ca) } }
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
