-- max_in_flight per key and per customer: requests of one key, or of all of one customer's keys,
-- in flight at once on a node, beyond which RelayKey answers 429 concurrency_limited. NULL: no
-- cap (every existing policy keeps none).
ALTER TABLE policies
  ADD COLUMN IF NOT EXISTS max_in_flight integer CONSTRAINT policies_max_in_flight_positive CHECK (max_in_flight > 0),
  ADD COLUMN IF NOT EXISTS customer_max_in_flight integer CONSTRAINT policies_customer_max_in_flight_positive CHECK (customer_max_in_flight > 0);
