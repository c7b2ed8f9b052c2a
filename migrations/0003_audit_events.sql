-- Audit events (CONTRACT §6), append-only for the application, and the two roles that make it so.
--
-- Roles, and how an operator runs RelayKey with them:
--   relaykey_audit_owner  NOLOGIN. Owns audit_events, its partitions and the functions below.
--                         Nobody logs in as it; only the owner (and superusers) could alter the
--                         table, disable its triggers, or drop and detach partitions.
--   relaykey_app          LOGIN, created without a password: give it one
--                         (ALTER ROLE relaykey_app PASSWORD '…') or let pg_hba.conf trust it.
--                         The role RelayKey serves with: read/write on the control-plane tables,
--                         INSERT and SELECT only on audit_events, EXECUTE on the partition function.
-- Migrations run as an administrator: a superuser, or a role with CREATEROLE that owns the
-- database (it is made a member of relaykey_audit_owner below so it can hand objects over).
-- RelayKey itself connects as the application role, with start-up migration off — the role may
-- not create tables, so RELAYKEY_AUTO_MIGRATE=true would stop start-up with "permission denied
-- for schema public":
--   DATABASE_URL=postgres://admin:…@db/relaykey npx relaykey migrate
--   DATABASE_URL=postgres://relaykey_app:…@db/relaykey RELAYKEY_AUTO_MIGRATE=false npm start
-- With one DATABASE_URL naming the administrator RelayKey still works, but then the append-only
-- guarantee rests on the triggers alone, which an owner can disable.
-- A later migration that adds a table RelayKey uses must GRANT it to relaykey_app.
--
-- Roles belong to the whole cluster, not to this database: several databases (tests, staging
-- next to production) migrate against the same roles, possibly at the same moment, so every
-- role statement tolerates the role existing already or appearing concurrently, and an existing
-- role's attributes (its password, say) are left alone.

DO $$
BEGIN
  BEGIN
    CREATE ROLE relaykey_audit_owner NOLOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    -- unique_violation: another database's migration created it after we looked
    NULL;
  END;
  BEGIN
    CREATE ROLE relaykey_app LOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
  END;
  -- a non-superuser administrator can only give objects to a role it belongs to
  IF NOT pg_has_role(current_user, 'relaykey_audit_owner', 'MEMBER') THEN
    EXECUTE format('GRANT relaykey_audit_owner TO %I', current_user);
  END IF;
  -- TEMPORARY: the PostgreSQL sink stages each batch in a temporary table
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO relaykey_app', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO relaykey_app;
-- CREATE: the owner creates the monthly partitions (relaykey_ensure_audit_partitions)
GRANT USAGE, CREATE ON SCHEMA public TO relaykey_audit_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON partners, credentials, policies, bindings, virtual_keys, key_hashes TO relaykey_app;

-- Same fields as ChainedAuditEvent (src/audit/audit-event.ts). Monthly partitions on ts keep
-- usage queries to the months they ask about and let retention detach whole months (as the
-- owner). The primary key has to contain the partition key: (ts, id) dedupes replays, which
-- always carry the same id and ts.
CREATE TABLE IF NOT EXISTS audit_events (
  ts                  timestamptz(3) NOT NULL,
  id                  uuid NOT NULL,
  request_id          text NOT NULL,
  key_id              text,
  customer            text,
  team                text,
  service             text,
  environment         text,
  partner             text NOT NULL,
  credential_id       text,
  method              text NOT NULL,
  path                text NOT NULL,
  status              integer NOT NULL,
  outcome             text NOT NULL,
  attempts            integer NOT NULL,
  latency_ms          integer NOT NULL,
  upstream_latency_ms integer,
  cost                bigint NOT NULL,
  bytes_in            bigint NOT NULL,
  bytes_out           bigint NOT NULL,
  payment_tx          text,
  -- hash chain per writer (src/audit/audit-chain.ts); `relaykey audit verify` checks it
  writer_id           text NOT NULL,
  seq                 bigint NOT NULL,
  prev_hash           text NOT NULL,
  hash                text NOT NULL,
  CONSTRAINT audit_events_pkey PRIMARY KEY (ts, id)
) PARTITION BY RANGE (ts);

-- GET /admin/audit?key_id=&before=&limit= reads one key's newest events first; refusals before
-- a key was identified have none and stay out of the index. Usage queries go by customer or by
-- partner over a time range.
CREATE INDEX IF NOT EXISTS audit_events_key_ts_idx ON audit_events (key_id, ts DESC) WHERE key_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_events_customer_ts_idx ON audit_events (customer, ts) WHERE customer IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_events_partner_ts_idx ON audit_events (partner, ts);

-- The application role lacks UPDATE, DELETE and TRUNCATE privileges to begin with; the triggers
-- also stop the owner and administrators from rewriting history by accident (a deliberate
-- change has to disable them first, which the hash chain then exposes).
CREATE OR REPLACE FUNCTION relaykey_audit_events_refuse () RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege', HINT = 'audit events can only be inserted';
END
$$;

-- Row-level triggers on a partitioned table are cloned onto every partition, present and future.
CREATE OR REPLACE TRIGGER audit_events_append_only
  BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION relaykey_audit_events_refuse();
-- Statement-level triggers are not cloned: this one covers TRUNCATE of the parent, and
-- relaykey_ensure_audit_partitions adds the same trigger to each partition it creates.
CREATE OR REPLACE TRIGGER audit_events_no_truncate
  BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION relaykey_audit_events_refuse();

-- Creates the monthly partitions (UTC months) from the month of `since` (at the latest the
-- current one) through `months_ahead` months after the current one, skipping those that exist.
-- SECURITY DEFINER so the application role can call it without owning anything: partitions
-- created here belong to relaykey_audit_owner. The bounds keep a caller from creating
-- partitions by the thousand. Returns how many it created.
CREATE OR REPLACE FUNCTION relaykey_ensure_audit_partitions (months_ahead integer, since timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
-- a definer function must not resolve names through a search_path its caller chose; UTC makes
-- month boundaries and the partition names the same whatever the session's time zone
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
  part_start timestamptz := date_trunc('month', least(since, now()));
  horizon    timestamptz := date_trunc('month', now()) + make_interval(months => months_ahead);
  part_name  text;
  created    integer := 0;
BEGIN
  IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 24 THEN
    RAISE EXCEPTION 'months_ahead must be between 0 and 24, got %', months_ahead;
  END IF;
  IF since IS NULL OR since < now() - interval '10 years' THEN
    RAISE EXCEPTION 'since must be within the last 10 years, got %', since;
  END IF;
  -- two processes adding the same month at once would otherwise collide in the catalog
  PERFORM pg_advisory_xact_lock(5929108479040565618);
  WHILE part_start <= horizon LOOP
    part_name := 'audit_events_p' || to_char(part_start, 'YYYY_MM');
    IF to_regclass(format('public.%I', part_name)) IS NULL THEN
      EXECUTE format('CREATE TABLE public.%I PARTITION OF public.audit_events FOR VALUES FROM (%L) TO (%L)',
        part_name, part_start, part_start + interval '1 month');
      EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON public.%I '
        || 'FOR EACH STATEMENT EXECUTE FUNCTION public.relaykey_audit_events_refuse()', part_name);
      created := created + 1;
    END IF;
    part_start := part_start + interval '1 month';
  END LOOP;
  RETURN created;
END
$$;

ALTER TABLE audit_events OWNER TO relaykey_audit_owner;
ALTER FUNCTION relaykey_audit_events_refuse () OWNER TO relaykey_audit_owner;
ALTER FUNCTION relaykey_ensure_audit_partitions (integer, timestamptz) OWNER TO relaykey_audit_owner;

-- functions are executable by PUBLIC unless revoked
REVOKE ALL ON FUNCTION relaykey_ensure_audit_partitions (integer, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION relaykey_ensure_audit_partitions (integer, timestamptz) TO relaykey_app;
REVOKE ALL ON audit_events FROM PUBLIC;
GRANT SELECT, INSERT ON audit_events TO relaykey_app;

SELECT relaykey_ensure_audit_partitions(3);
