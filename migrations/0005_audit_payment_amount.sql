-- payment_amount on audit events: what an x402-paid request was priced at, in the asset's atomic
-- units (issue #6). uint256 has at most 78 digits, past what bigint or a JSON number hold exactly.
--
-- On the partitioned parent, so every monthly partition, present and future, gets the column.
-- Nullable and without a default: a catalog change only, no rewrite, so the ACCESS EXCLUSIVE lock
-- it takes on audit_events is held for milliseconds (audit writes waiting on it meanwhile are
-- spilled and replayed if it takes longer, never lost). Rows stored before it read NULL, which is
-- what they were hashed with (src/audit/audit-chain.ts): `relaykey audit verify` still passes them.
--
-- No CHECK: on a partitioned table it would scan every partition under that lock. Values are
-- canonical decimal strings by construction (auditPaymentAmount in src/audit/audit-event.ts).
--
-- ALTER TABLE needs the owner, relaykey_audit_owner; 0003 made the administrator that ran it a
-- member, but this may be a different administrator.
DO $$
BEGIN
  IF NOT pg_has_role(current_user, 'relaykey_audit_owner', 'MEMBER') THEN
    EXECUTE format('GRANT relaykey_audit_owner TO %I', current_user);
  END IF;
END
$$;

ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS payment_amount numeric(78, 0);

-- The application role's INSERT and SELECT were granted on the table, not per column, so they
-- cover the new one. Rolling upgrade: a node still on the previous release names its columns in
-- COPY and INSERT … SELECT, so it keeps writing (payment_amount NULL), and its staging table
-- (CREATE TEMP TABLE … LIKE audit_events, per session) needs no change either.
