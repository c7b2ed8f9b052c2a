-- The audit table without its (customer, ts) and (partner, ts) indexes: about a quarter of
-- PostgreSQL's CPU per stored event (`npm run bench:audit`). Usage reads the hourly rollups
-- (0008), and GET /admin/audit's customer and partner filters find their hours through them
-- (src/audit/rollup-hours.ts). The (key_id, ts) index stays: a key's events are the most asked
-- for, and (outcome, ts) for refusals (0006).
DO $$
BEGIN
  IF NOT pg_has_role(current_user, 'relaykey_audit_owner', 'MEMBER') THEN
    EXECUTE format('GRANT relaykey_audit_owner TO %I', current_user);
  END IF;
END
$$;

DROP INDEX IF EXISTS audit_events_customer_ts_idx;
DROP INDEX IF EXISTS audit_events_partner_ts_idx;
