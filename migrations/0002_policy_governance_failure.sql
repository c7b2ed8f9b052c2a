-- What the data plane does with a policy's requests when the store behind a rate-limit or
-- budget decision does not answer in time: 'deny' fails closed (503 governance_unavailable),
-- 'allow' fails open (forwarded unmetered: limits and budgets are not enforced meanwhile).
-- The default keeps every existing policy failing closed, as it did before this column.

ALTER TABLE policies
  ADD COLUMN on_governance_failure text NOT NULL DEFAULT 'deny',
  ADD CONSTRAINT policies_on_governance_failure_mode CHECK (on_governance_failure IN ('deny', 'allow'));
