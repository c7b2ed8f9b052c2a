-- GET /admin/audit?outcome= (or code=): the newest events with one refusal code. Without this
-- index a rare code (one event in 10,000) read every row of the months asked about: 265 ms over
-- 1,000,000 events in `npm run bench:audit-query`, against a 100 ms target; with it, 2 ms.
--
-- Refusals only: forwarded events, most of the trail, are found fastest by the primary key's
-- newest-first order anyway, and leaving them out spares most inserts the index's cost (indexing
-- every event added 2–4 µs of PostgreSQL CPU to each in `npm run bench:audit`, about a fifth).
-- The planner uses it for outcome = <a value other than 'forwarded'>, which it can prove for the
-- custom plans PostgreSQL makes with the values bound.
--
-- On the partitioned parent, so every monthly partition, present and future, gets it. It is
-- built inside the migration's transaction, holding a SHARE lock that makes audit inserts wait
-- until it is done: about a second per million events. On a large trail, build each partition's
-- index beforehand without blocking writes, and this statement then only attaches them:
--   CREATE INDEX CONCURRENTLY audit_events_p2026_11_outcome_ts_idx ON audit_events_p2026_11 (outcome, ts)
--     WHERE outcome <> 'forwarded';
--
-- CREATE INDEX needs the owner, relaykey_audit_owner; 0003 made the administrator that ran it a
-- member, but this may be a different administrator.
DO $$
BEGIN
  IF NOT pg_has_role(current_user, 'relaykey_audit_owner', 'MEMBER') THEN
    EXECUTE format('GRANT relaykey_audit_owner TO %I', current_user);
  END IF;
END
$$;

CREATE INDEX IF NOT EXISTS audit_events_outcome_ts_idx ON audit_events (outcome, ts) WHERE outcome <> 'forwarded';
