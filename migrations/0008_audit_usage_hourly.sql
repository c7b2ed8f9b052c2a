-- Hourly usage rollups: GET /admin/usage reads these instead of counting audit_events. One row
-- per (hour, key, customer, partner, outcome) with the sums usage reports. The audit sink adds a
-- batch's events here in the batch's own transaction (src/audit/postgres-audit-sink.ts), only
-- for the events it stored, so the rollup always equals a count over audit_events.
--
-- key_id and customer are '' where the event has none: they are part of the primary key.
--
-- A derived table, not evidence: rows are updated in place as batches land, so it is not
-- append-only, and the application role may INSERT and UPDATE it (never DELETE). The audit
-- trail itself (audit_events, audit_blocks) stays append-only and hash-chained.
--
-- Rolling upgrades: events written by nodes still on an older release after this migration ran
-- are not added here (they do not know the table). Upgrade every node's audit writer before
-- relying on usage, or count such a window with the SQL below run against that window.
DO $$
BEGIN
  IF NOT pg_has_role(current_user, 'relaykey_audit_owner', 'MEMBER') THEN
    EXECUTE format('GRANT relaykey_audit_owner TO %I', current_user);
  END IF;
END
$$;

CREATE TABLE audit_usage_hourly (
  hour          timestamptz NOT NULL,
  key_id        text NOT NULL,
  customer      text NOT NULL,
  partner       text NOT NULL,
  outcome       text NOT NULL,
  requests      bigint NOT NULL,
  -- attempts beyond the first
  retried       bigint NOT NULL,
  -- events answered 5xx
  server_errors bigint NOT NULL,
  cost          bigint NOT NULL,
  bytes_in      bigint NOT NULL,
  bytes_out     bigint NOT NULL,
  -- events with a settled x402 payment (payment_tx), and their payment_amount summed exactly
  paid          bigint NOT NULL,
  paid_amount   numeric NOT NULL,
  CONSTRAINT audit_usage_hourly_pkey PRIMARY KEY (hour, key_id, customer, partner, outcome)
) WITH (fillfactor = 70);  -- room on each page, so adding to a row is a HOT update: no index writes

-- usage for one key, customer or partner over a month
CREATE INDEX audit_usage_hourly_key_idx ON audit_usage_hourly (key_id, hour);
CREATE INDEX audit_usage_hourly_customer_idx ON audit_usage_hourly (customer, hour);
CREATE INDEX audit_usage_hourly_partner_idx ON audit_usage_hourly (partner, hour);

ALTER TABLE audit_usage_hourly OWNER TO relaykey_audit_owner;
REVOKE ALL ON audit_usage_hourly FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON audit_usage_hourly TO relaykey_app;

-- The events stored so far. SHARE mode holds audit inserts back until this transaction commits,
-- so no batch lands between the count and the table's first use.
LOCK TABLE audit_events IN SHARE MODE;
INSERT INTO audit_usage_hourly
SELECT date_trunc('hour', ts, 'UTC'), coalesce(key_id, ''), coalesce(customer, ''), partner, outcome,
       count(*), sum(greatest(attempts - 1, 0)), count(*) FILTER (WHERE status >= 500), sum(cost),
       sum(bytes_in), sum(bytes_out), count(payment_tx),
       coalesce(sum(payment_amount) FILTER (WHERE payment_tx IS NOT NULL), 0)
  FROM audit_events
 GROUP BY 1, 2, 3, 4, 5;
