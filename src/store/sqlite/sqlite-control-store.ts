// The control-plane store on SQLite (embedded mode): one file shared by the node's workers.
// better-sqlite3 is synchronous; the async interface just wraps each call. Writes that read
// first run in IMMEDIATE transactions so another process cannot slip a write in between.
import { randomUUID } from 'node:crypto'
import type Database from 'better-sqlite3'
import { ConflictError } from '../../errors.js'
import { newId } from '../ids.js'
import type { ControlStore, FingerprintName, KeyFilter } from '../control-store.js'
import type { AdminChange, AdminChangeInput, ChangeFilter } from '../../admin-changes/admin-change.js'
import { changeHash, GENESIS_CHANGE_HASH } from '../../admin-changes/change-chain.js'
import { sqliteChangeRow } from '../../admin-changes/change-rows.js'
import type {
  Binding, BindingInput, Credential, CredentialInput, KeyInput, KeyPatch, Partner, PartnerInput,
  Policy, PolicyInput, ResolvedKeyRecord, VirtualKey,
} from '../model.js'
import {
  bindingParams, credentialParams, isoOrNull, keyParams, merge, nowIso, partnerParams, policyParams,
  toBinding, toCredential, toKey, toPartner, toPolicy,
  CREDENTIAL_FIELDS, KEY_PATCH_FIELDS, PARTNER_FIELDS, POLICY_FIELDS, type Row,
} from './control-rows.js'
import { guarded, isForeignKeyViolation } from './constraint-errors.js'
import { openSqliteDatabase } from './schema.js'
import { prepareStatements, type Statements } from './control-statements.js'

export interface SqliteControlStoreOptions {
  /** close() closes the database too; false (the default) when the handle is shared */
  ownsDatabase?: boolean
}

export class SqliteControlStore implements ControlStore {
  readonly kind = 'sqlite' as const
  #db: Database.Database
  #ownsDatabase: boolean
  #q: Statements
  #transaction: Database.Transaction<(work: () => unknown) => unknown>

  /** `db` must have foreign_keys = ON and the schema applied (see openSqliteDatabase). */
  constructor (db: Database.Database, options: SqliteControlStoreOptions = {}) {
    this.#db = db
    this.#ownsDatabase = options.ownsDatabase ?? false
    this.#q = prepareStatements(db)
    this.#transaction = db.transaction((work: () => unknown) => work())
  }

  async ping (): Promise<void> {
    this.#q.ping.get()
  }

  async close (): Promise<void> {
    if (this.#ownsDatabase) this.#db.close()
  }

  async createPartner (input: PartnerInput): Promise<Partner> {
    const now = nowIso()
    const partner: Partner = { ...input, id: newId('prt'), created_at: now, updated_at: now }
    return toPartner(guarded(() => this.#q.insertPartner.get(partnerParams(partner)) as Row))
  }

  async listPartners (): Promise<Partner[]> {
    return this.#q.listPartners.all().map(toPartner)
  }

  async getPartner (slug: string): Promise<Partner | null> {
    return mapRow(this.#q.partnerBySlug.get(slug), toPartner)
  }

  async getPartnerById (id: string): Promise<Partner | null> {
    return mapRow(this.#q.partnerById.get(id), toPartner)
  }

  async updatePartner (slug: string, patch: Partial<PartnerInput>): Promise<Partner | null> {
    return this.#immediate(() => {
      const current = mapRow(this.#q.partnerBySlug.get(slug), toPartner)
      if (current === null) return null
      const next = merge(current, patch, PARTNER_FIELDS)
      if (next === null) return current
      return toPartner(guarded(() => this.#q.updatePartner.get(partnerParams(next)) as Row))
    })
  }

  async deletePartner (slug: string): Promise<Partner | null> {
    // credentials and bindings go with it (ON DELETE CASCADE)
    return mapRow(this.#q.deletePartner.get(slug), toPartner)
  }

  async createCredential (partnerId: string, input: CredentialInput): Promise<Credential> {
    const now = nowIso()
    const credential: Credential = { ...input, id: newId('cred'), partner_id: partnerId, created_at: now, updated_at: now }
    return toCredential(guarded(() => this.#q.insertCredential.get(credentialParams(credential)) as Row, () => 'partner'))
  }

  async listCredentials (partnerId: string): Promise<Credential[]> {
    return this.#q.credentialsOfPartner.all(partnerId).map(toCredential)
  }

  async getCredential (id: string): Promise<Credential | null> {
    return mapRow(this.#q.credentialById.get(id), toCredential)
  }

  async updateCredential (id: string, patch: Partial<CredentialInput>): Promise<Credential | null> {
    return this.#immediate(() => {
      const current = mapRow(this.#q.credentialById.get(id), toCredential)
      if (current === null) return null
      const next = merge(current, patch, CREDENTIAL_FIELDS)
      if (next === null) return current
      return toCredential(guarded(() => this.#q.updateCredential.get(credentialParams(next)) as Row))
    })
  }

  async deleteCredential (id: string): Promise<Credential | null> {
    return this.#immediate(() => {
      const deleted = mapRow(this.#q.deleteCredential.get(id), toCredential)
      if (deleted === null) return null
      // A binding listing the credential keeps working with the others; leaving the dead id in
      // its list would only show up as a dangling reference in GET /admin/bindings.
      for (const binding of this.#q.bindingsListingCredential.all(id).map(toBinding)) {
        const remaining = (binding.credentials ?? []).filter((credentialId) => credentialId !== id)
        this.#q.setBindingCredentials.run(JSON.stringify(remaining), binding.id)
      }
      return deleted
    })
  }

  async createPolicy (input: PolicyInput): Promise<Policy> {
    const now = nowIso()
    const policy: Policy = { ...input, id: newId('pol'), created_at: now, updated_at: now }
    return toPolicy(guarded(() => this.#q.insertPolicy.get(policyParams(policy)) as Row))
  }

  async listPolicies (): Promise<Policy[]> {
    return this.#q.listPolicies.all().map(toPolicy)
  }

  async getPolicy (idOrName: string): Promise<Policy | null> {
    return mapRow(this.#q.policyByIdOrName.get({ v: idOrName }), toPolicy)
  }

  async updatePolicy (id: string, patch: Partial<PolicyInput>): Promise<Policy | null> {
    return this.#immediate(() => {
      const current = mapRow(this.#q.policyById.get(id), toPolicy)
      if (current === null) return null
      const next = merge(current, patch, POLICY_FIELDS)
      if (next === null) return current
      return toPolicy(guarded(() => this.#q.updatePolicy.get(policyParams(next)) as Row))
    })
  }

  async deletePolicy (id: string): Promise<Policy | null> {
    try {
      // bindings go with it (CASCADE); keys hold it back (RESTRICT)
      return mapRow(this.#q.deletePolicy.get(id), toPolicy)
    } catch (err) {
      if (isForeignKeyViolation(err)) throw new ConflictError('policy', 'the policy is still used by virtual keys')
      throw err
    }
  }

  async createBinding (input: BindingInput): Promise<Binding> {
    const binding: Binding = { ...input, id: newId('bnd'), created_at: nowIso() }
    const missing = (): string => this.#q.policyById.get(input.policy_id) === undefined ? 'policy' : 'partner'
    return toBinding(guarded(() => this.#q.insertBinding.get(bindingParams(binding)) as Row, missing))
  }

  async listBindings (): Promise<Binding[]> {
    return this.#q.listBindings.all().map(toBinding)
  }

  async getBinding (id: string): Promise<Binding | null> {
    return mapRow(this.#q.bindingById.get(id), toBinding)
  }

  async deleteBinding (id: string): Promise<Binding | null> {
    return mapRow(this.#q.deleteBinding.get(id), toBinding)
  }

  async createKey (input: KeyInput, prefix: string, hash: Buffer): Promise<VirtualKey> {
    const now = nowIso()
    const key: VirtualKey = { ...input, id: newId('key'), prefix, revoked_at: null, created_at: now, updated_at: now }
    return this.#immediate(() => {
      const created = toKey(guarded(() => this.#q.insertKey.get(keyParams(key)) as Row, () => 'policy'))
      this.#q.insertHash.run(hash, key.id, null, now)
      return created
    })
  }

  async listKeys (filter: KeyFilter = {}): Promise<VirtualKey[]> {
    return this.#q.listKeys.all({ policy_id: filter.policy_id ?? null, customer: filter.customer ?? null }).map(toKey)
  }

  async getKey (id: string): Promise<VirtualKey | null> {
    return mapRow(this.#q.keyById.get(id), toKey)
  }

  async updateKey (id: string, patch: KeyPatch): Promise<VirtualKey | null> {
    return this.#immediate(() => {
      const current = mapRow(this.#q.keyById.get(id), toKey)
      if (current === null) return null
      const next = merge(current, patch, KEY_PATCH_FIELDS)
      if (next === null) return current
      return toKey(guarded(() => this.#q.updateKey.get(keyParams(next)) as Row, () => 'policy'))
    })
  }

  async revokeKey (id: string, at: Date): Promise<VirtualKey | null> {
    // Revoking twice keeps the first time: that is when the key stopped working.
    return mapRow(this.#q.revokeKey.get({ id, at: at.toISOString(), now: nowIso() }), toKey)
  }

  async rotateKey (id: string, newHash: Buffer, newPrefix: string, oldHashesExpireAt: Date): Promise<VirtualKey | null> {
    return this.#immediate(() => {
      const current = mapRow(this.#q.keyById.get(id), toKey)
      if (current === null) return null
      const now = nowIso()
      // before the insert, so the new hash stays unlimited
      this.#q.expireHashes.run({ key_id: id, at: oldHashesExpireAt.toISOString() })
      this.#q.insertHash.run(newHash, id, null, now)
      return toKey(this.#q.updateKey.get(keyParams({ ...current, prefix: newPrefix, updated_at: now })) as Row)
    })
  }

  async resolveKey (hash: Buffer): Promise<ResolvedKeyRecord | null> {
    // HOT PATH (cache miss): a handful of indexed lookups in one read transaction, so the
    // record is one consistent snapshot even while an admin write lands.
    return this.#transaction.deferred(() => {
      const row = this.#q.keyByHash.get(hash)
      if (row === undefined) return null
      const key = toKey(row)
      const policy = toPolicy(this.#q.policyById.get(key.policy_id) as Row)
      const bindings = this.#q.bindingsOfPolicy.all(policy.id).map((bindingRow) => {
        const binding = toBinding(bindingRow)
        return {
          binding,
          partner: toPartner(this.#q.partnerById.get(binding.partner_id) as Row),
          credentials: this.#q.credentialsOfPartner.all(binding.partner_id).map(toCredential),
        }
      })
      return { key, hash_expires_at: isoOrNull(row.hash_expires_at), policy, bindings }
    }) as ResolvedKeyRecord | null
  }

  async keyEnvironments (): Promise<Array<{ policy_id: string; environment: string }>> {
    return this.#q.keyEnvironments.all(nowIso()).map((r) => ({ policy_id: r.policy_id, environment: r.environment }))
  }

  async appendChange (input: AdminChangeInput): Promise<AdminChange> {
    return this.#immediate(() => {
      const last = this.#q.lastChange.get()
      const unhashed = { ...input, seq: last === undefined ? 1 : Number(last.seq) + 1, id: randomUUID(), ts: new Date().toISOString() }
      const prev = (last?.hash as string | undefined) ?? GENESIS_CHANGE_HASH
      const change: AdminChange = { ...unhashed, prev_hash: prev, hash: changeHash(prev, unhashed) }
      this.#q.insertChange.run({ ...change, ts: Date.parse(change.ts), changes: JSON.stringify(change.changes) })
      return change
    })
  }

  async listChanges (filter: ChangeFilter): Promise<AdminChange[]> {
    const where: string[] = []
    const params: Record<string, unknown> = { limit: filter.limit }
    const add = (column: string, op: string, value: unknown): void => {
      if (value === undefined) return
      where.push(`${column} ${op} @${column}_${where.length}`)
      params[`${column}_${where.length - 1}`] = value
    }
    add('resource_type', '=', filter.resource_type)
    add('resource_id', '=', filter.resource_id)
    add('token_name', '=', filter.token_name)
    add('action', '=', filter.action)
    add('ts', '>=', filter.since)
    add('ts', '<', filter.until)
    add('seq', '<', filter.before_seq)
    // only fixed column names and operators reach the text; values are bound
    const rows = this.#db.prepare<unknown[], Row>(`SELECT * FROM admin_changes ${where.length === 0 ? '' : 'WHERE ' + where.join(' AND ')} ORDER BY seq DESC LIMIT @limit`).all(params)
    return rows.map(sqliteChangeRow)
  }

  async recordFingerprint (name: FingerprintName, fingerprint: string): Promise<string> {
    return this.#immediate(() => {
      this.#q.insertFingerprint.run(name, fingerprint, nowIso())
      return (this.#q.fingerprint.get(name) as Row).fingerprint as string
    })
  }

  #immediate<T> (work: () => T): T {
    return this.#transaction.immediate(work) as T
  }
}

/** Opens `file` (WAL, foreign keys, schema applied) for a store that owns the handle. */
export function openSqliteControlStore (file: string): SqliteControlStore {
  return new SqliteControlStore(openSqliteDatabase(file), { ownsDatabase: true })
}

function mapRow<T> (row: Row | undefined, map: (row: Row) => T): T | null {
  return row === undefined ? null : map(row)
}
