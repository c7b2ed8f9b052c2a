// The control-plane store: one interface, implemented by PostgreSQL (distributed mode) and
// SQLite (embedded mode). Both run test/store/control-store.contract.ts.
import type {
  Binding, BindingInput, Credential, CredentialInput, KeyInput, KeyPatch, Partner, PartnerInput,
  Policy, PolicyInput, ResolvedKeyRecord, VirtualKey,
} from './model.js'
import type { AdminChange, AdminChangeInput, ChangeFilter } from '../admin-changes/admin-change.js'

/** the secrets whose fingerprints a deployment keeps (secret-fingerprints.ts) */
export type FingerprintName = 'hmac_secret' | 'master_key'

export interface KeyFilter {
  policy_id?: string
  customer?: string
}

export interface ControlStore {
  readonly kind: 'postgres' | 'sqlite'
  /** resolves when the store answers a trivial query */
  ping(): Promise<void>
  close(): Promise<void>

  /** ConflictError('slug') on a duplicate slug */
  createPartner(input: PartnerInput): Promise<Partner>
  listPartners(): Promise<Partner[]>
  getPartner(slug: string): Promise<Partner | null>
  getPartnerById(id: string): Promise<Partner | null>
  updatePartner(slug: string, patch: Partial<PartnerInput>): Promise<Partner | null>
  /** also deletes the partner's credentials and bindings */
  deletePartner(slug: string): Promise<Partner | null>

  /** ConflictError('name') when the partner already has a credential of that name */
  createCredential(partnerId: string, input: CredentialInput): Promise<Credential>
  listCredentials(partnerId: string): Promise<Credential[]>
  getCredential(id: string): Promise<Credential | null>
  updateCredential(id: string, patch: Partial<CredentialInput>): Promise<Credential | null>
  deleteCredential(id: string): Promise<Credential | null>

  /** ConflictError('name') on a duplicate name */
  createPolicy(input: PolicyInput): Promise<Policy>
  listPolicies(): Promise<Policy[]>
  /** by id, or by name when no id matches */
  getPolicy(idOrName: string): Promise<Policy | null>
  updatePolicy(id: string, patch: Partial<PolicyInput>): Promise<Policy | null>
  /** ConflictError('policy') while keys still use it; deletes its bindings */
  deletePolicy(id: string): Promise<Policy | null>

  /** ConflictError('partner') when the policy is already bound to the partner */
  createBinding(input: BindingInput): Promise<Binding>
  listBindings(): Promise<Binding[]>
  getBinding(id: string): Promise<Binding | null>
  deleteBinding(id: string): Promise<Binding | null>

  /** stores the key with its first active hash */
  createKey(input: KeyInput, prefix: string, hash: Buffer): Promise<VirtualKey>
  listKeys(filter?: KeyFilter): Promise<VirtualKey[]>
  getKey(id: string): Promise<VirtualKey | null>
  updateKey(id: string, patch: KeyPatch): Promise<VirtualKey | null>
  revokeKey(id: string, at: Date): Promise<VirtualKey | null>
  /**
   * Adds `newHash` as an active hash and lets every older hash of the key expire at
   * `oldHashesExpireAt` (an earlier expiry already set is kept). Updates the prefix.
   */
  rotateKey(id: string, newHash: Buffer, newPrefix: string, oldHashesExpireAt: Date): Promise<VirtualKey | null>
  /** the key owning `hash` with its policy, bindings, bound partners and all their credentials */
  resolveKey(hash: Buffer): Promise<ResolvedKeyRecord | null>

  /** each environment the policy's keys that still work (not revoked, not expired) are in, once per policy */
  keyEnvironments(): Promise<Array<{ policy_id: string; environment: string }>>

  /** appends one admin change at the end of the change log's chain (seq, id, ts, hashes assigned here) */
  appendChange(change: AdminChangeInput): Promise<AdminChange>
  /** the change log, newest first */
  listChanges(filter: ChangeFilter): Promise<AdminChange[]>
  /** the fingerprint stored under `name`; `fingerprint` is stored first when there is none yet */
  recordFingerprint(name: FingerprintName, fingerprint: string): Promise<string>
}
