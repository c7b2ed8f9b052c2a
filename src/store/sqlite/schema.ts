// Longer than 400 lines for a reason: most of it is SQLITE_MIGRATIONS, an append-only list read top to bottom.
// The embedded-mode SQLite file: how to open it and what is in it. The schema is an ordered
// list of migrations, applied once each and counted in PRAGMA user_version (one counter per
// file, so every table that lives in this file belongs in this list). Same model as
// migrations/*.sql for PostgreSQL: JSON as TEXT, times as ISO 8601 UTC text (which sorts
// like the time), hashes as BLOB.
import Database from 'better-sqlite3'

/** a step of the schema: SQL, or (where SQL alone cannot do it) a function run in the same transaction */
export type SqliteMigration = string | ((db: Database.Database) => void)

export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  // 1: control plane
  `
  CREATE TABLE partners (
    id              TEXT PRIMARY KEY,
    slug            TEXT NOT NULL UNIQUE,
    base_urls       TEXT NOT NULL,
    auth            TEXT NOT NULL,
    timeouts        TEXT NOT NULL,
    retry           TEXT NOT NULL,
    circuit_breaker TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
  ) STRICT;

  CREATE TABLE credentials (
    id          TEXT PRIMARY KEY,
    partner_id  TEXT NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    environment TEXT NOT NULL,
    secret      TEXT NOT NULL,
    weight      INTEGER NOT NULL,
    rate_limit  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (partner_id, name)
  ) STRICT;

  CREATE TABLE policies (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    rate_limit          TEXT,
    customer_rate_limit TEXT,
    budget              TEXT,
    customer_budget     TEXT,
    costs               TEXT NOT NULL,
    allow               TEXT,
    payment             TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
  ) STRICT;

  CREATE TABLE bindings (
    id          TEXT PRIMARY KEY,
    policy_id   TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    partner_id  TEXT NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    credentials TEXT,
    created_at  TEXT NOT NULL,
    UNIQUE (policy_id, partner_id)
  ) STRICT;

  CREATE INDEX bindings_partner_idx ON bindings (partner_id);

  CREATE TABLE virtual_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    policy_id   TEXT NOT NULL REFERENCES policies (id) ON DELETE RESTRICT,
    environment TEXT NOT NULL,
    customer    TEXT,
    team        TEXT,
    service     TEXT,
    prefix      TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
  ) STRICT;

  CREATE INDEX virtual_keys_policy_idx ON virtual_keys (policy_id);
  CREATE INDEX virtual_keys_customer_idx ON virtual_keys (customer) WHERE customer IS NOT NULL;

  CREATE TABLE key_hashes (
    hash       BLOB PRIMARY KEY,
    key_id     TEXT NOT NULL REFERENCES virtual_keys (id) ON DELETE CASCADE,
    expires_at TEXT,
    created_at TEXT NOT NULL
  ) STRICT, WITHOUT ROWID;

  CREATE INDEX key_hashes_key_idx ON key_hashes (key_id);
  `,
  // 2: what a policy's requests get when the limit/budget store does not answer in time; the
  // default keeps existing policies failing closed, as they did before
  `
  ALTER TABLE policies ADD COLUMN on_governance_failure TEXT NOT NULL DEFAULT 'deny'
    CHECK (on_governance_failure IN ('deny', 'allow'));
  `,
  // 3: audit events (docs/operations.md, "Audit events"), as migrations/0003_audit_events.sql minus partitions and
  // roles: a file has no roles, so the triggers are what keeps it append-only (against
  // mistakes; the hash chain is what shows deliberate edits)
  `
  CREATE TABLE audit_events (
    ts                  TEXT NOT NULL,
    id                  TEXT NOT NULL,
    request_id          TEXT NOT NULL,
    key_id              TEXT,
    customer            TEXT,
    team                TEXT,
    service             TEXT,
    environment         TEXT,
    partner             TEXT NOT NULL,
    credential_id       TEXT,
    method              TEXT NOT NULL,
    path                TEXT NOT NULL,
    status              INTEGER NOT NULL,
    outcome             TEXT NOT NULL,
    attempts            INTEGER NOT NULL,
    latency_ms          INTEGER NOT NULL,
    upstream_latency_ms INTEGER,
    cost                INTEGER NOT NULL,
    bytes_in            INTEGER NOT NULL,
    bytes_out           INTEGER NOT NULL,
    payment_tx          TEXT,
    writer_id           TEXT NOT NULL,
    seq                 INTEGER NOT NULL,
    prev_hash           TEXT NOT NULL,
    hash                TEXT NOT NULL,
    PRIMARY KEY (ts, id)
  ) STRICT;

  CREATE INDEX audit_events_key_ts_idx ON audit_events (key_id, ts DESC) WHERE key_id IS NOT NULL;
  CREATE INDEX audit_events_customer_ts_idx ON audit_events (customer, ts) WHERE customer IS NOT NULL;
  CREATE INDEX audit_events_partner_ts_idx ON audit_events (partner, ts);

  -- INSERT OR REPLACE would otherwise rewrite a stored event (its implicit delete fires no
  -- trigger): an event already stored makes any insert of it a no-op, which is also what
  -- INSERT OR IGNORE does with it
  CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
  WHEN EXISTS (SELECT 1 FROM audit_events WHERE ts = NEW.ts AND id = NEW.id)
  BEGIN SELECT RAISE(IGNORE); END;
  CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
  BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END;
  CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
  BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END;
  `,
  // 4: x402 payments claimed by the replay guard (docs/payments.md: a payment payload is accepted
  // once). A row whose expires_at has passed is no claim and may be taken again; the guard
  // sweeps such rows lazily.
  `
  CREATE TABLE payment_claims (
    hash       BLOB PRIMARY KEY,
    expires_at TEXT NOT NULL
  ) STRICT, WITHOUT ROWID;

  CREATE INDEX payment_claims_expires_idx ON payment_claims (expires_at);
  `,
  // 5: what an x402-paid request was priced at, as migrations/0005_audit_payment_amount.sql.
  // TEXT: atomic units can pass 2^63, past INTEGER. PostgreSQL's numeric(78,0) refuses what is
  // not a number; the trigger refused what is not a canonical one (digits, no leading zero, at
  // most 78), so usage can sum the column exactly with BigInt (step 6 moved that check into the
  // sink). A trigger and not a CHECK: the sink's INSERT OR IGNORE would skip a row failing a
  // CHECK without a word, losing the event.
  // Rows stored earlier read NULL, which is what they were hashed with.
  `
  ALTER TABLE audit_events ADD COLUMN payment_amount TEXT;

  CREATE TRIGGER audit_events_payment_amount BEFORE INSERT ON audit_events
  WHEN NEW.payment_amount IS NOT NULL AND NOT (
    NEW.payment_amount NOT GLOB '*[^0-9]*' AND length(NEW.payment_amount) BETWEEN 1 AND 78
    AND (NEW.payment_amount = '0' OR NEW.payment_amount NOT GLOB '0*'))
  BEGIN SELECT RAISE(ABORT, 'audit_events: payment_amount must be a decimal string of atomic units'); END;
  `,
  // 6: the payment_amount check moves into the sink (sqlite-audit-sink.ts), which refuses the
  // whole batch as the trigger did. The trigger cost about a fifth of every audit insert
  // (measured with bench:audit), paid by every request for a check that almost always sees NULL.
  `
  DROP TRIGGER IF EXISTS audit_events_payment_amount;
  `,
  // 7: GET /admin/audit?outcome=, as migrations/0006_audit_query_indexes.sql: without it a rare
  // outcome scanned the whole table (359 ms over 1,000,000 events in bench:audit-query). Every
  // outcome, not only refusals as in PostgreSQL: SQLite uses a partial index only where the query
  // spells out its WHERE, which a bound `outcome = ?` never does. The sink's cost per event did
  // not move with it (bench:audit, 17.6 against 17.9 µs without it).
  `
  CREATE INDEX audit_events_outcome_ts_idx ON audit_events (outcome, ts);
  `,
  // 8: audit blocks, as migrations/0007_audit_blocks.sql: events from this release on are chained
  // block by block (src/audit/audit-block.ts), their rows with empty prev_hash and hash.
  `
  CREATE TABLE audit_blocks (
    writer_id  TEXT NOT NULL,
    first_seq  INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    PRIMARY KEY (writer_id, first_seq)
  ) STRICT, WITHOUT ROWID;

  CREATE TRIGGER audit_blocks_no_replace BEFORE INSERT ON audit_blocks
  WHEN EXISTS (SELECT 1 FROM audit_blocks WHERE writer_id = NEW.writer_id AND first_seq = NEW.first_seq)
  BEGIN SELECT RAISE(IGNORE); END;
  CREATE TRIGGER audit_blocks_no_update BEFORE UPDATE ON audit_blocks
  BEGIN SELECT RAISE(ABORT, 'audit_blocks is append-only: UPDATE refused'); END;
  CREATE TRIGGER audit_blocks_no_delete BEFORE DELETE ON audit_blocks
  BEGIN SELECT RAISE(ABORT, 'audit_blocks is append-only: DELETE refused'); END;
  `,
  // 9: hourly usage rollups, as migrations/0008_audit_usage_hourly.sql; the audit sink adds each
  // batch's stored events in the batch's transaction. hour as ts is stored (ISO text, to the
  // hour); key_id and customer '' where the event has none; paid_amount a decimal string (it
  // passes 64 bits), summed with BigInt.
  (db) => {
    db.exec(`
    CREATE TABLE audit_usage_hourly (
      hour          TEXT NOT NULL,
      key_id        TEXT NOT NULL,
      customer      TEXT NOT NULL,
      partner       TEXT NOT NULL,
      outcome       TEXT NOT NULL,
      requests      INTEGER NOT NULL,
      retried       INTEGER NOT NULL,
      server_errors INTEGER NOT NULL,
      cost          INTEGER NOT NULL,
      bytes_in      INTEGER NOT NULL,
      bytes_out     INTEGER NOT NULL,
      paid          INTEGER NOT NULL,
      paid_amount   TEXT NOT NULL,
      PRIMARY KEY (hour, key_id, customer, partner, outcome)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX audit_usage_hourly_key_idx ON audit_usage_hourly (key_id, hour);
    CREATE INDEX audit_usage_hourly_customer_idx ON audit_usage_hourly (customer, hour);
    CREATE INDEX audit_usage_hourly_partner_idx ON audit_usage_hourly (partner, hour);
    `)
    addStoredEventsToRollups(db)
  },
  // 10: max_in_flight per key and per customer, as migrations/0009_policy_max_in_flight.sql
  `
  ALTER TABLE policies ADD COLUMN max_in_flight INTEGER CHECK (max_in_flight > 0);
  ALTER TABLE policies ADD COLUMN customer_max_in_flight INTEGER CHECK (customer_max_in_flight > 0);
  `,
  // 11: the lean audit table, as migrations/0010_audit_lean_table.sql: customer and partner
  // filters find their hours through the usage rollups
  `
  DROP INDEX IF EXISTS audit_events_customer_ts_idx;
  DROP INDEX IF EXISTS audit_events_partner_ts_idx;
  `,
  // 12: partner auth schemes, as migrations/0011_partner_auth_schemes.sql (`secret` holds the
  // JSON text 'null' where a credential has none: the column's NOT NULL stays), and the OAuth2
  // access tokens the node's workers share (oauth2-token-cache.ts)
  `
  ALTER TABLE credentials ADD COLUMN secret_parts TEXT NOT NULL DEFAULT '{}';
  ALTER TABLE partners ADD COLUMN tls TEXT;
  CREATE TABLE oauth2_tokens (
    credential_id TEXT PRIMARY KEY,
    ciphertext    TEXT,
    expires_at    INTEGER NOT NULL,
    lock_until    INTEGER NOT NULL
  ) STRICT;
  `,
  // 13: secret fingerprints and the admin change log, as
  // migrations/0012_fingerprints_and_admin_changes.sql (ts in epoch ms, changes as JSON text)
  `
  CREATE TABLE secret_fingerprints (
    name        TEXT PRIMARY KEY CHECK (name IN ('hmac_secret', 'master_key')),
    fingerprint TEXT NOT NULL,
    recorded_at TEXT NOT NULL
  ) STRICT;
  CREATE TABLE admin_changes (
    seq           INTEGER PRIMARY KEY CHECK (seq > 0),
    id            TEXT NOT NULL UNIQUE,
    ts            INTEGER NOT NULL,
    request_id    TEXT NOT NULL,
    token_name    TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    changes       TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
  ) STRICT;
  CREATE INDEX admin_changes_resource_idx ON admin_changes (resource_type, resource_id, seq);
  CREATE INDEX admin_changes_ts_idx ON admin_changes (ts);
  -- INSERT OR REPLACE would rewrite a row through an implicit delete that fires no trigger
  CREATE TRIGGER admin_changes_no_replace BEFORE INSERT ON admin_changes
  WHEN EXISTS (SELECT 1 FROM admin_changes WHERE seq = NEW.seq OR id = NEW.id)
  BEGIN SELECT RAISE(ABORT, 'admin_changes is append-only: a stored change cannot be replaced'); END;
  CREATE TRIGGER admin_changes_no_update BEFORE UPDATE ON admin_changes
  BEGIN SELECT RAISE(ABORT, 'admin_changes is append-only: UPDATE refused'); END;
  CREATE TRIGGER admin_changes_no_delete BEFORE DELETE ON admin_changes
  BEGIN SELECT RAISE(ABORT, 'admin_changes is append-only: DELETE refused'); END;
  `,
]

/** adds the events in audit_events to the hourly rollups (schema step 9's backfill) */
export function addStoredEventsToRollups (db: Database.Database): void {
  registerDecimalSum(db)
  // ts is ISO text: its first 13 characters are the hour
  db.exec(`
    INSERT INTO audit_usage_hourly
    SELECT substr(ts, 1, 13) || ':00:00.000Z', coalesce(key_id, ''), coalesce(customer, ''), partner, outcome,
           count(*), coalesce(sum(max(attempts - 1, 0)), 0), sum(status >= 500), sum(cost),
           sum(bytes_in), sum(bytes_out), count(payment_tx),
           coalesce(relaykey_decimal_sum(payment_amount) FILTER (WHERE payment_tx IS NOT NULL), '0')
      FROM audit_events
     GROUP BY 1, 2, 3, 4, 5
  `)
}

/**
 * relaykey_decimal_sum(text): the exact sum of decimal strings (x402 atomic units pass 2^63,
 * where SQLite's sum() turns inexact), as a decimal string. Values are canonical: the audit sink
 * stores nothing else.
 */
export function registerDecimalSum (db: Database.Database): void {
  db.aggregate('relaykey_decimal_sum', {
    start: () => 0n,
    step: (total: bigint, amount: unknown) => (amount === null ? total : total + BigInt(amount as string)),
    result: (total: bigint) => total.toString(),
    deterministic: true,
  })
}

/**
 * Opens (creating if needed) the SQLite file with the settings every process sharing it must
 * use, and brings its schema up to date.
 */
export function openSqliteDatabase (file: string, options: { checkpointPages?: number } = {}): Database.Database {
  const db = new Database(file)
  try {
    configureSqliteConnection(db, 5000, options.checkpointPages)
    db.pragma('foreign_keys = ON')
    applySqliteSchema(db)
    return db
  } catch (err) {
    db.close()
    throw err
  }
}

/**
 * WAL pages (4 KiB each) after which the audit writer's commit checkpoints the file. SQLite's
 * default, 1,000, made checkpoints a fifth of an audit insert's CPU: every batch dirties pages
 * all over the per-key and per-customer indexes, and each checkpoint copies them all back.
 * Ten times further apart, a page rewritten by many batches is copied once
 * (`npm run bench:audit`: 33.6 → 26.6 µs per event over a million events). The WAL file then
 * grows to about 40 MiB.
 */
export const AUDIT_WRITER_CHECKPOINT_PAGES = 10_000

/**
 * Every other writing connection only checkpoints past twice that: a safety net for when the
 * audit writer does not (audit off, or a checkpoint held back by long reads), so checkpoints
 * otherwise run on the audit writer's thread and never on a worker's event loop (the embedded
 * limits store commits there on every decision).
 */
const CHECKPOINT_PAGES = 2 * AUDIT_WRITER_CHECKPOINT_PAGES

/**
 * The settings every connection to the embedded file uses: a busy timeout, WAL, synchronous
 * NORMAL (durable across process crashes in WAL mode; only power loss can drop the last
 * commits, the trade embedded mode makes for write throughput), and the checkpoint threshold.
 */
export function configureSqliteConnection (db: Database.Database, busyTimeoutMs: number, checkpointPages = CHECKPOINT_PAGES): void {
  // busy_timeout first: switching a fresh file to WAL needs a lock another process may hold
  db.pragma(`busy_timeout = ${Math.trunc(busyTimeoutMs)}`)
  switchToWal(db, busyTimeoutMs)
  db.pragma('synchronous = NORMAL')
  db.pragma(`wal_autocheckpoint = ${Math.trunc(checkpointPages)}`)
}

/**
 * SQLite answers SQLITE_BUSY at once, without its busy handler, when another process holds a
 * lock while this one switches a fresh file to WAL (workers starting together): retried until
 * the busy timeout. Runs once per connection, at start-up.
 */
function switchToWal (db: Database.Database, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      db.pragma('journal_mode = WAL')
      return
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)
    }
  }
}

/** Applies the migrations the file has not seen yet; returns how many ran. */
export function applySqliteSchema (db: Database.Database, migrations: readonly SqliteMigration[] = SQLITE_MIGRATIONS): number {
  const apply = db.transaction(() => {
    const current = db.pragma('user_version', { simple: true }) as number
    if (current > migrations.length) {
      throw new Error(`SQLite schema version ${current} is newer than this RelayKey knows (${migrations.length})`)
    }
    for (let version = current; version < migrations.length; version++) {
      const step = migrations[version]!
      if (typeof step === 'string') db.exec(step)
      else step(db)
    }
    db.pragma(`user_version = ${migrations.length}`)
    return migrations.length - current
  })
  // IMMEDIATE takes the write lock before user_version is read: a second process starting at
  // the same moment waits (busy_timeout), then finds the schema current instead of racing
  // through the same CREATE TABLEs.
  return apply.immediate()
}
