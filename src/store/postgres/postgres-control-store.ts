// The control-plane store on PostgreSQL (distributed mode), shared by every node.
// Schema: migrations/*.sql. resolveKey is the data plane's cache-miss path and
// answers in one round trip; everything else serves the admin API.
import { randomUUID } from 'node:crypto'
import postgres from 'postgres'
import { ConflictError } from '../../errors.js'
import { newId } from '../ids.js'
import type { ControlStore, FingerprintName, KeyFilter } from '../control-store.js'
import type { AdminChange, AdminChangeInput, ChangeFilter } from '../../admin-changes/admin-change.js'
import { changeHash, GENESIS_CHANGE_HASH } from '../../admin-changes/change-chain.js'
import { postgresChangeRow } from '../../admin-changes/change-rows.js'
import { guarded, isForeignKeyViolation } from './constraint-errors.js'
import { clientOptions } from './client-options.js'
import type { PostgresSocketFactory } from './postgres-socket.js'
import {
  dateOrNull, isoOrNull, jsonParam, mapFirst, patchValues, toBinding, toCredential, toKey, toPartner, toPolicy,
  CREDENTIAL_COLUMNS, KEY_COLUMNS, PARTNER_COLUMNS, POLICY_COLUMNS, type PatchValues, type Row,
} from './control-rows.js'
import type {
  Binding, BindingInput, Credential, CredentialInput, KeyInput, KeyPatch, Partner, PartnerInput,
  Policy, PolicyInput, ResolvedKeyRecord, VirtualKey,
} from '../model.js'

export interface PostgresControlStoreOptions {
  /** close() ends the client too; false (the default) when the client is shared */
  ownsClient?: boolean
}

export class PostgresControlStore implements ControlStore {
  readonly kind = 'postgres' as const
  #sql: postgres.Sql
  #ownsClient: boolean

  constructor (sql: postgres.Sql, options: PostgresControlStoreOptions = {}) {
    this.#sql = sql
    this.#ownsClient = options.ownsClient ?? false
  }

  async ping (): Promise<void> {
    await this.#sql`SELECT 1`
  }

  async close (): Promise<void> {
    if (this.#ownsClient) await this.#sql.end({ timeout: 5 })
  }

  async createPartner (input: PartnerInput): Promise<Partner> {
    const rows = await guarded(this.#sql`
      INSERT INTO partners (id, slug, base_urls, auth, tls, timeouts, retry, circuit_breaker)
      VALUES (${newId('prt')}, ${input.slug}, ${this.#json(input.base_urls)}, ${this.#json(input.auth)}, ${this.#json(input.tls)},
              ${this.#json(input.timeouts)}, ${this.#json(input.retry)}, ${this.#json(input.circuit_breaker)})
      RETURNING *`)
    return toPartner(rows[0])
  }

  async listPartners (): Promise<Partner[]> {
    return (await this.#sql`SELECT * FROM partners ORDER BY slug COLLATE "C"`).map(toPartner)
  }

  async getPartner (slug: string): Promise<Partner | null> {
    return mapFirst(await this.#sql`SELECT * FROM partners WHERE slug = ${slug}`, toPartner)
  }

  async getPartnerById (id: string): Promise<Partner | null> {
    return mapFirst(await this.#sql`SELECT * FROM partners WHERE id = ${id}`, toPartner)
  }

  async updatePartner (slug: string, patch: Partial<PartnerInput>): Promise<Partner | null> {
    const { values, columns } = this.#patch(patch, PARTNER_COLUMNS)
    if (columns.length === 0) return this.getPartner(slug)
    return mapFirst(await guarded(this.#sql`
      UPDATE partners SET ${this.#sql(values, columns)}, updated_at = now()
      WHERE slug = ${slug}
      RETURNING *`), toPartner)
  }

  async deletePartner (slug: string): Promise<Partner | null> {
    // credentials and bindings go with it (ON DELETE CASCADE)
    return mapFirst(await this.#sql`DELETE FROM partners WHERE slug = ${slug} RETURNING *`, toPartner)
  }

  async createCredential (partnerId: string, input: CredentialInput): Promise<Credential> {
    const rows = await guarded(this.#sql`
      INSERT INTO credentials (id, partner_id, name, environment, secret, secret_parts, weight, rate_limit)
      VALUES (${newId('cred')}, ${partnerId}, ${input.name}, ${input.environment}, ${this.#json(input.secret)}, ${this.#json(input.secret_parts)},
              ${input.weight}, ${this.#json(input.rate_limit)})
      RETURNING *`)
    return toCredential(rows[0])
  }

  async listCredentials (partnerId: string): Promise<Credential[]> {
    return (await this.#sql`
      SELECT * FROM credentials WHERE partner_id = ${partnerId} ORDER BY name COLLATE "C"`).map(toCredential)
  }

  async getCredential (id: string): Promise<Credential | null> {
    return mapFirst(await this.#sql`SELECT * FROM credentials WHERE id = ${id}`, toCredential)
  }

  async updateCredential (id: string, patch: Partial<CredentialInput>): Promise<Credential | null> {
    const { values, columns } = this.#patch(patch, CREDENTIAL_COLUMNS)
    if (columns.length === 0) return this.getCredential(id)
    return mapFirst(await guarded(this.#sql`
      UPDATE credentials SET ${this.#sql(values, columns)}, updated_at = now()
      WHERE id = ${id}
      RETURNING *`), toCredential)
  }

  async deleteCredential (id: string): Promise<Credential | null> {
    // A binding listing the credential keeps working with the others; leaving the dead id in
    // its list would only show up as a dangling reference in GET /admin/bindings.
    return mapFirst(await this.#sql`
      WITH deleted AS (
        DELETE FROM credentials WHERE id = ${id} RETURNING *
      ), unlisted AS (
        UPDATE bindings SET credentials = credentials - ${id}::text
        WHERE credentials @> jsonb_build_array(${id}::text) AND EXISTS (SELECT 1 FROM deleted)
      )
      SELECT * FROM deleted`, toCredential)
  }

  async createPolicy (input: PolicyInput): Promise<Policy> {
    const rows = await guarded(this.#sql`
      INSERT INTO policies (id, name, rate_limit, customer_rate_limit, budget, customer_budget, costs, allow, payment,
                            on_governance_failure, max_in_flight, customer_max_in_flight)
      VALUES (${newId('pol')}, ${input.name}, ${this.#json(input.rate_limit)}, ${this.#json(input.customer_rate_limit)},
              ${this.#json(input.budget)}, ${this.#json(input.customer_budget)}, ${this.#json(input.costs)},
              ${this.#json(input.allow)}, ${this.#json(input.payment)}, ${input.on_governance_failure},
              ${input.max_in_flight}, ${input.customer_max_in_flight})
      RETURNING *`)
    return toPolicy(rows[0])
  }

  async listPolicies (): Promise<Policy[]> {
    return (await this.#sql`SELECT * FROM policies ORDER BY name COLLATE "C"`).map(toPolicy)
  }

  async getPolicy (idOrName: string): Promise<Policy | null> {
    return mapFirst(await this.#sql`
      SELECT * FROM policies WHERE id = ${idOrName} OR name = ${idOrName}
      ORDER BY id = ${idOrName} DESC
      LIMIT 1`, toPolicy)
  }

  async updatePolicy (id: string, patch: Partial<PolicyInput>): Promise<Policy | null> {
    const { values, columns } = this.#patch(patch, POLICY_COLUMNS)
    if (columns.length === 0) return mapFirst(await this.#sql`SELECT * FROM policies WHERE id = ${id}`, toPolicy)
    return mapFirst(await guarded(this.#sql`
      UPDATE policies SET ${this.#sql(values, columns)}, updated_at = now()
      WHERE id = ${id}
      RETURNING *`), toPolicy)
  }

  async deletePolicy (id: string): Promise<Policy | null> {
    try {
      // bindings go with it (CASCADE); keys hold it back (RESTRICT)
      return mapFirst(await this.#sql`DELETE FROM policies WHERE id = ${id} RETURNING *`, toPolicy)
    } catch (err) {
      if (isForeignKeyViolation(err)) throw new ConflictError('policy', 'the policy is still used by virtual keys')
      throw err
    }
  }

  async createBinding (input: BindingInput): Promise<Binding> {
    const rows = await guarded(this.#sql`
      INSERT INTO bindings (id, policy_id, partner_id, credentials)
      VALUES (${newId('bnd')}, ${input.policy_id}, ${input.partner_id}, ${this.#json(input.credentials)})
      RETURNING *`)
    return toBinding(rows[0])
  }

  async listBindings (): Promise<Binding[]> {
    return (await this.#sql`SELECT * FROM bindings ORDER BY created_at, id COLLATE "C"`).map(toBinding)
  }

  async getBinding (id: string): Promise<Binding | null> {
    return mapFirst(await this.#sql`SELECT * FROM bindings WHERE id = ${id}`, toBinding)
  }

  async deleteBinding (id: string): Promise<Binding | null> {
    return mapFirst(await this.#sql`DELETE FROM bindings WHERE id = ${id} RETURNING *`, toBinding)
  }

  async createKey (input: KeyInput, prefix: string, hash: Buffer): Promise<VirtualKey> {
    const rows = await guarded(this.#sql`
      WITH created AS (
        INSERT INTO virtual_keys (id, name, policy_id, environment, customer, team, service, prefix, expires_at)
        VALUES (${newId('key')}, ${input.name}, ${input.policy_id}, ${input.environment}, ${input.customer},
                ${input.team}, ${input.service}, ${prefix}, ${dateOrNull(input.expires_at)})
        RETURNING *
      ), first_hash AS (
        INSERT INTO key_hashes (hash, key_id) SELECT ${hash}, id FROM created
      )
      SELECT * FROM created`)
    return toKey(rows[0])
  }

  async listKeys (filter: KeyFilter = {}): Promise<VirtualKey[]> {
    const sql = this.#sql
    return (await sql`
      SELECT * FROM virtual_keys
      WHERE true
        ${filter.policy_id === undefined ? sql`` : sql`AND policy_id = ${filter.policy_id}`}
        ${filter.customer === undefined ? sql`` : sql`AND customer = ${filter.customer}`}
      ORDER BY created_at, id COLLATE "C"`).map(toKey)
  }

  async getKey (id: string): Promise<VirtualKey | null> {
    return mapFirst(await this.#sql`SELECT * FROM virtual_keys WHERE id = ${id}`, toKey)
  }

  async updateKey (id: string, patch: KeyPatch): Promise<VirtualKey | null> {
    const { values, columns } = this.#patch(patch, KEY_COLUMNS)
    if (columns.length === 0) return this.getKey(id)
    return mapFirst(await guarded(this.#sql`
      UPDATE virtual_keys SET ${this.#sql(values, columns)}, updated_at = now()
      WHERE id = ${id}
      RETURNING *`), toKey)
  }

  async revokeKey (id: string, at: Date): Promise<VirtualKey | null> {
    // Revoking twice keeps the first time: that is when the key stopped working.
    return mapFirst(await this.#sql`
      UPDATE virtual_keys
      SET revoked_at = coalesce(revoked_at, ${at}),
          updated_at = CASE WHEN revoked_at IS NULL THEN now() ELSE updated_at END
      WHERE id = ${id}
      RETURNING *`, toKey)
  }

  async rotateKey (id: string, newHash: Buffer, newPrefix: string, oldHashesExpireAt: Date): Promise<VirtualKey | null> {
    // One statement, so one snapshot: the UPDATE of old hashes cannot see the hash inserted
    // beside it. LEAST ignores NULL, so an unlimited hash gets the new expiry and an earlier
    // grace period is kept.
    return mapFirst(await guarded(this.#sql`
      WITH rotated AS (
        UPDATE virtual_keys SET prefix = ${newPrefix}, updated_at = now()
        WHERE id = ${id}
        RETURNING *
      ), expired AS (
        UPDATE key_hashes SET expires_at = LEAST(expires_at, ${oldHashesExpireAt})
        WHERE key_id IN (SELECT id FROM rotated)
      ), added AS (
        INSERT INTO key_hashes (hash, key_id) SELECT ${newHash}, id FROM rotated
      )
      SELECT * FROM rotated`), toKey)
  }

  async resolveKey (hash: Buffer): Promise<ResolvedKeyRecord | null> {
    // HOT PATH (cache miss): one round trip. Bound partners and their credentials come back
    // as jsonb, whose timestamps are strings; the row mappers accept both forms.
    const rows = await this.#sql`
      SELECT k.*, h.expires_at AS hash_expires_at, to_jsonb(p) AS policy,
        coalesce((
          SELECT jsonb_agg(jsonb_build_object(
            'binding', to_jsonb(b),
            'partner', to_jsonb(pt),
            'credentials', coalesce((
              SELECT jsonb_agg(to_jsonb(c) ORDER BY c.name COLLATE "C")
              FROM credentials c
              WHERE c.partner_id = pt.id
            ), '[]'::jsonb)
          ) ORDER BY b.created_at, b.id COLLATE "C")
          FROM bindings b
          JOIN partners pt ON pt.id = b.partner_id
          WHERE b.policy_id = p.id
        ), '[]'::jsonb) AS bindings
      FROM key_hashes h
      JOIN virtual_keys k ON k.id = h.key_id
      JOIN policies p ON p.id = k.policy_id
      WHERE h.hash = ${hash}`
    if (rows.length === 0) return null
    const row = rows[0]
    return {
      key: toKey(row),
      hash_expires_at: isoOrNull(row.hash_expires_at),
      policy: toPolicy(row.policy),
      bindings: (row.bindings as Row[]).map((entry) => ({
        binding: toBinding(entry.binding),
        partner: toPartner(entry.partner),
        credentials: (entry.credentials as Row[]).map(toCredential),
      })),
    }
  }

  async keyEnvironments (): Promise<Array<{ policy_id: string; environment: string }>> {
    return (await this.#sql`
      SELECT DISTINCT policy_id, environment FROM virtual_keys
      WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`).map((r) => ({ policy_id: r.policy_id, environment: r.environment }))
  }

  async appendChange (input: AdminChangeInput): Promise<AdminChange> {
    return await this.#sql.begin(async (tx) => {
      // one chain for every node: appends take turns (admin changes are rare)
      await tx`SELECT pg_advisory_xact_lock(${CHANGE_LOG_LOCK}::bigint)`
      const [last] = await tx`SELECT seq, hash FROM admin_changes ORDER BY seq DESC LIMIT 1`
      const unhashed = { ...input, seq: last === undefined ? 1 : Number(last.seq) + 1, id: randomUUID(), ts: new Date().toISOString() }
      const prev = (last?.hash as string | undefined) ?? GENESIS_CHANGE_HASH
      const change: AdminChange = { ...unhashed, prev_hash: prev, hash: changeHash(prev, unhashed) }
      await tx`
        INSERT INTO admin_changes (seq, id, ts, request_id, token_name, action, resource_type, resource_id, changes, prev_hash, hash)
        VALUES (${change.seq}, ${change.id}, ${change.ts}, ${change.request_id}, ${change.token_name}, ${change.action},
                ${change.resource_type}, ${change.resource_id}, ${this.#json(change.changes)}, ${change.prev_hash}, ${change.hash})`
      return change
    }) as AdminChange
  }

  async listChanges (filter: ChangeFilter): Promise<AdminChange[]> {
    const sql = this.#sql
    const rows = await sql`
      SELECT * FROM admin_changes WHERE true
      ${filter.resource_type === undefined ? sql`` : sql`AND resource_type = ${filter.resource_type}`}
      ${filter.resource_id === undefined ? sql`` : sql`AND resource_id = ${filter.resource_id}`}
      ${filter.token_name === undefined ? sql`` : sql`AND token_name = ${filter.token_name}`}
      ${filter.action === undefined ? sql`` : sql`AND action = ${filter.action}`}
      ${filter.since === undefined ? sql`` : sql`AND ts >= ${new Date(filter.since)}`}
      ${filter.until === undefined ? sql`` : sql`AND ts < ${new Date(filter.until)}`}
      ${filter.before_seq === undefined ? sql`` : sql`AND seq < ${filter.before_seq}`}
      ORDER BY seq DESC LIMIT ${filter.limit}`
    return rows.map(postgresChangeRow)
  }

  async recordFingerprint (name: FingerprintName, fingerprint: string): Promise<string> {
    await this.#sql`INSERT INTO secret_fingerprints (name, fingerprint) VALUES (${name}, ${fingerprint}) ON CONFLICT (name) DO NOTHING`
    const [row] = await this.#sql`SELECT fingerprint FROM secret_fingerprints WHERE name = ${name}`
    return row!.fingerprint as string
  }

  #json (value: unknown): postgres.Parameter | null {
    return jsonParam(this.#sql, value)
  }

  #patch (patch: object, columns: readonly string[]): PatchValues {
    return patchValues(this.#sql, patch, columns)
  }
}

// Any constant nothing else in the database uses: 'RKchange' in ASCII.
const CHANGE_LOG_LOCK = 0x524b6368616e6765n.toString()

/**
 * Opens a client for `url` that the returned store owns (close() ends it), on `socket`'s
 * connections (postgres-socket.ts: watchedPostgresSocket closes and replaces stalled ones).
 */
export function openPostgresControlStore (url: string, options: { max: number; socket: PostgresSocketFactory }): PostgresControlStore {
  const sql = postgres(url, clientOptions({ max: options.max, socket: options.socket }))
  return new PostgresControlStore(sql, { ownsClient: true })
}
