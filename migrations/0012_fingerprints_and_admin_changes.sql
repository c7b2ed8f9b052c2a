-- Two things a deployment must keep straight across nodes and restarts.
--
-- secret_fingerprints: a keyed fingerprint (never the secret) of the HMAC pepper virtual keys
-- are hashed with and of the master key inline secrets are sealed with, recorded by the first
-- node to start. A node started with another value refuses to start, saying which, instead of
-- answering every key 401 or every inline secret "cannot be decrypted".
CREATE TABLE IF NOT EXISTS secret_fingerprints (
  name        text PRIMARY KEY CHECK (name IN ('hmac_secret', 'master_key')),
  fingerprint text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT ON secret_fingerprints TO relaykey_app;

-- admin_changes: every admin mutation (who: the admin token's name; what: the resource and its
-- fields before and after, secrets only as references; when; the request id), hash-chained in
-- seq order (src/admin-changes/change-chain.ts) and append-only like audit_events: owned by
-- relaykey_audit_owner, INSERT and SELECT only for the application role, and triggers that
-- refuse UPDATE, DELETE and TRUNCATE. `relaykey audit verify` checks the chain.
CREATE TABLE IF NOT EXISTS admin_changes (
  seq           bigint PRIMARY KEY CHECK (seq > 0),
  id            uuid NOT NULL UNIQUE,
  ts            timestamptz(3) NOT NULL,
  request_id    text NOT NULL,
  token_name    text NOT NULL,
  action        text NOT NULL,
  resource_type text NOT NULL,
  resource_id   text NOT NULL,
  changes       jsonb NOT NULL,
  prev_hash     text NOT NULL,
  hash          text NOT NULL
);
CREATE INDEX IF NOT EXISTS admin_changes_resource_idx ON admin_changes (resource_type, resource_id, seq);
CREATE INDEX IF NOT EXISTS admin_changes_ts_idx ON admin_changes (ts);

CREATE OR REPLACE FUNCTION relaykey_admin_changes_refuse () RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
  RAISE EXCEPTION 'admin_changes is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege', HINT = 'admin changes can only be inserted';
END
$$;
CREATE OR REPLACE TRIGGER admin_changes_append_only
  BEFORE UPDATE OR DELETE ON admin_changes
  FOR EACH ROW EXECUTE FUNCTION relaykey_admin_changes_refuse();
CREATE OR REPLACE TRIGGER admin_changes_no_truncate
  BEFORE TRUNCATE ON admin_changes
  FOR EACH STATEMENT EXECUTE FUNCTION relaykey_admin_changes_refuse();

ALTER TABLE admin_changes OWNER TO relaykey_audit_owner;
ALTER FUNCTION relaykey_admin_changes_refuse () OWNER TO relaykey_audit_owner;
GRANT SELECT, INSERT ON admin_changes TO relaykey_app;
