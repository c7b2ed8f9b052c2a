-- Audit blocks: the tamper evidence of events written from this release on (src/audit/audit-block.ts).
-- A writer chains its events block by block, one block per write to its local log, instead of
-- hashing every event: one SHA-256 per block over the rows as stored. Their rows have empty
-- prev_hash and hash; rows of older releases keep their per-event chain, and
-- `relaykey audit verify` checks both.
--
-- Append-only like audit_events: the application role may INSERT and SELECT, and triggers refuse
-- UPDATE, DELETE and TRUNCATE to everyone. A replayed block (same writer, same first seq) is
-- skipped by the primary key.
DO $$
BEGIN
  IF NOT pg_has_role(current_user, 'relaykey_audit_owner', 'MEMBER') THEN
    EXECUTE format('GRANT relaykey_audit_owner TO %I', current_user);
  END IF;
END
$$;

CREATE TABLE IF NOT EXISTS audit_blocks (
  writer_id  text NOT NULL,
  first_seq  bigint NOT NULL,
  last_seq   bigint NOT NULL,
  prev_hash  text NOT NULL,
  hash       text NOT NULL,
  CONSTRAINT audit_blocks_pkey PRIMARY KEY (writer_id, first_seq)
);

CREATE OR REPLACE TRIGGER audit_blocks_append_only
  BEFORE UPDATE OR DELETE ON audit_blocks
  FOR EACH ROW EXECUTE FUNCTION relaykey_audit_events_refuse();
CREATE OR REPLACE TRIGGER audit_blocks_no_truncate
  BEFORE TRUNCATE ON audit_blocks
  FOR EACH STATEMENT EXECUTE FUNCTION relaykey_audit_events_refuse();

ALTER TABLE audit_blocks OWNER TO relaykey_audit_owner;
REVOKE ALL ON audit_blocks FROM PUBLIC;
GRANT SELECT, INSERT ON audit_blocks TO relaykey_app;
