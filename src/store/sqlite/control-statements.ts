// Every SQL statement of the SQLite control store, prepared once per database handle.
// Ordering matches the PostgreSQL store: SQLite's BINARY collation is PostgreSQL's "C".
import type Database from 'better-sqlite3'
import type { Row } from './control-rows.js'

export function prepareStatements (db: Database.Database) {
  const q = (source: string) => db.prepare<unknown[], Row>(source)
  return {
    ping: q('SELECT 1'),

    keyEnvironments: q(`SELECT DISTINCT policy_id, environment FROM virtual_keys
      WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`),
    lastChange: q('SELECT seq, hash FROM admin_changes ORDER BY seq DESC LIMIT 1'),
    insertChange: q(`INSERT INTO admin_changes (seq, id, ts, request_id, token_name, action, resource_type, resource_id, changes, prev_hash, hash)
      VALUES (@seq, @id, @ts, @request_id, @token_name, @action, @resource_type, @resource_id, @changes, @prev_hash, @hash)`),
    insertFingerprint: q('INSERT INTO secret_fingerprints (name, fingerprint, recorded_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING'),
    fingerprint: q('SELECT fingerprint FROM secret_fingerprints WHERE name = ?'),

    insertPartner: q(`INSERT INTO partners (id, slug, base_urls, auth, tls, timeouts, retry, circuit_breaker, created_at, updated_at)
      VALUES (@id, @slug, @base_urls, @auth, @tls, @timeouts, @retry, @circuit_breaker, @created_at, @updated_at) RETURNING *`),
    listPartners: q('SELECT * FROM partners ORDER BY slug'),
    partnerBySlug: q('SELECT * FROM partners WHERE slug = ?'),
    partnerById: q('SELECT * FROM partners WHERE id = ?'),
    updatePartner: q(`UPDATE partners SET slug = @slug, base_urls = @base_urls, auth = @auth, tls = @tls, timeouts = @timeouts,
      retry = @retry, circuit_breaker = @circuit_breaker, updated_at = @updated_at WHERE id = @id RETURNING *`),
    deletePartner: q('DELETE FROM partners WHERE slug = ? RETURNING *'),

    insertCredential: q(`INSERT INTO credentials (id, partner_id, name, environment, secret, secret_parts, weight, rate_limit, created_at, updated_at)
      VALUES (@id, @partner_id, @name, @environment, @secret, @secret_parts, @weight, @rate_limit, @created_at, @updated_at) RETURNING *`),
    credentialsOfPartner: q('SELECT * FROM credentials WHERE partner_id = ? ORDER BY name'),
    credentialById: q('SELECT * FROM credentials WHERE id = ?'),
    updateCredential: q(`UPDATE credentials SET name = @name, environment = @environment, secret = @secret, secret_parts = @secret_parts, weight = @weight,
      rate_limit = @rate_limit, updated_at = @updated_at WHERE id = @id RETURNING *`),
    deleteCredential: q('DELETE FROM credentials WHERE id = ? RETURNING *'),
    bindingsListingCredential: q(`SELECT * FROM bindings
      WHERE EXISTS (SELECT 1 FROM json_each(bindings.credentials) WHERE value = ?)`),
    setBindingCredentials: q('UPDATE bindings SET credentials = ? WHERE id = ?'),

    insertPolicy: q(`INSERT INTO policies (id, name, rate_limit, customer_rate_limit, budget, customer_budget, costs, allow, payment,
        on_governance_failure, max_in_flight, customer_max_in_flight, created_at, updated_at)
      VALUES (@id, @name, @rate_limit, @customer_rate_limit, @budget, @customer_budget, @costs, @allow, @payment,
        @on_governance_failure, @max_in_flight, @customer_max_in_flight, @created_at, @updated_at) RETURNING *`),
    listPolicies: q('SELECT * FROM policies ORDER BY name'),
    policyById: q('SELECT * FROM policies WHERE id = ?'),
    policyByIdOrName: q('SELECT * FROM policies WHERE id = @v OR name = @v ORDER BY id = @v DESC LIMIT 1'),
    updatePolicy: q(`UPDATE policies SET name = @name, rate_limit = @rate_limit, customer_rate_limit = @customer_rate_limit,
      budget = @budget, customer_budget = @customer_budget, costs = @costs, allow = @allow, payment = @payment,
      on_governance_failure = @on_governance_failure, max_in_flight = @max_in_flight,
      customer_max_in_flight = @customer_max_in_flight, updated_at = @updated_at WHERE id = @id RETURNING *`),
    deletePolicy: q('DELETE FROM policies WHERE id = ? RETURNING *'),

    insertBinding: q(`INSERT INTO bindings (id, policy_id, partner_id, credentials, created_at)
      VALUES (@id, @policy_id, @partner_id, @credentials, @created_at) RETURNING *`),
    listBindings: q('SELECT * FROM bindings ORDER BY created_at, id'),
    bindingsOfPolicy: q('SELECT * FROM bindings WHERE policy_id = ? ORDER BY created_at, id'),
    bindingById: q('SELECT * FROM bindings WHERE id = ?'),
    deleteBinding: q('DELETE FROM bindings WHERE id = ? RETURNING *'),

    insertKey: q(`INSERT INTO virtual_keys (id, name, policy_id, environment, customer, team, service, prefix, expires_at,
        revoked_at, created_at, updated_at)
      VALUES (@id, @name, @policy_id, @environment, @customer, @team, @service, @prefix, @expires_at,
        @revoked_at, @created_at, @updated_at) RETURNING *`),
    listKeys: q(`SELECT * FROM virtual_keys
      WHERE (@policy_id IS NULL OR policy_id = @policy_id) AND (@customer IS NULL OR customer = @customer)
      ORDER BY created_at, id`),
    keyById: q('SELECT * FROM virtual_keys WHERE id = ?'),
    updateKey: q(`UPDATE virtual_keys SET name = @name, policy_id = @policy_id, customer = @customer, team = @team,
      service = @service, prefix = @prefix, expires_at = @expires_at, updated_at = @updated_at WHERE id = @id RETURNING *`),
    revokeKey: q(`UPDATE virtual_keys
      SET revoked_at = coalesce(revoked_at, @at),
          updated_at = CASE WHEN revoked_at IS NULL THEN @now ELSE updated_at END
      WHERE id = @id RETURNING *`),

    insertHash: q('INSERT INTO key_hashes (hash, key_id, expires_at, created_at) VALUES (?, ?, ?, ?)'),
    // min() of SQLite returns NULL if any argument is NULL, hence the coalesce
    expireHashes: q('UPDATE key_hashes SET expires_at = min(coalesce(expires_at, @at), @at) WHERE key_id = @key_id'),
    keyByHash: q(`SELECT k.*, h.expires_at AS hash_expires_at
      FROM key_hashes h JOIN virtual_keys k ON k.id = h.key_id
      WHERE h.hash = ?`),
  }
}

export type Statements = ReturnType<typeof prepareStatements>
