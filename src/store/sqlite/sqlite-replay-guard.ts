// Payment claims in the embedded SQLite file (table payment_claims, store/sqlite/schema.ts),
// shared by every worker of the node. A claim is one upsert statement: SQLite runs writers one
// at a time on the file, so of two workers claiming the same payment exactly one changes a row.
import Database from 'better-sqlite3'
import { GovernanceUnavailableError } from '../../errors.js'
import { openSqliteDatabase } from './schema.js'
import type { PaymentReplayGuard } from '../../payments/replay-guard.js'

/** how often (guard clock) one process sweeps expired claims */
const PURGE_EVERY_MS = 60_000

export interface SqliteReplayGuardOptions {
  /** epoch ms; Date.now unless a test injects a clock */
  now?: () => number
  /** close() closes the database too; false (the default) when the handle is shared */
  ownsDatabase?: boolean
}

export class SqliteReplayGuard implements PaymentReplayGuard {
  readonly #db: Database.Database
  readonly #ownsDatabase: boolean
  readonly #now: () => number
  readonly #claim: Database.Statement<[Buffer, string, string]>
  readonly #release: Database.Statement<[Buffer]>
  readonly #purge: Database.Statement<[string]>
  #purgeAt: number

  /** `db` must carry the schema (openSqliteDatabase) and should be in WAL mode with a busy timeout */
  constructor (db: Database.Database, options: SqliteReplayGuardOptions = {}) {
    this.#db = db
    this.#ownsDatabase = options.ownsDatabase ?? false
    this.#now = options.now ?? Date.now
    // an expired row counts as absent: it is taken over, a live one is left alone (0 changes)
    this.#claim = db.prepare(`INSERT INTO payment_claims (hash, expires_at) VALUES (?, ?)
      ON CONFLICT (hash) DO UPDATE SET expires_at = excluded.expires_at WHERE payment_claims.expires_at <= ?`)
    this.#release = db.prepare('DELETE FROM payment_claims WHERE hash = ?')
    this.#purge = db.prepare('DELETE FROM payment_claims WHERE expires_at <= ?')
    this.#purgeAt = 0
  }

  async claim (key: string, ttlMs: number): Promise<boolean> {
    const now = this.#now()
    let claimed: boolean
    try {
      claimed = this.#claim.run(Buffer.from(key, 'hex'), iso(now + ttlMs), iso(now)).changes === 1
    } catch (err) {
      throw new GovernanceUnavailableError('SQLite did not answer the payment claim', err)
    }
    if (now >= this.#purgeAt) this.#sweep(now)
    return claimed
  }

  async release (key: string): Promise<void> {
    try {
      this.#release.run(Buffer.from(key, 'hex'))
    } catch (err) {
      throw new GovernanceUnavailableError('SQLite did not take the payment release', err)
    }
  }

  async close (): Promise<void> {
    if (this.#ownsDatabase) this.#db.close()
  }

  /** best effort: expired rows mean nothing, they only take room until the next sweep */
  #sweep (now: number): void {
    this.#purgeAt = now + PURGE_EVERY_MS
    try {
      this.#purge.run(iso(now))
    } catch {
      // a busy file just means next time
    }
  }
}

// ISO 8601 UTC text sorts like the time it names, as every time in the file does
function iso (ms: number): string {
  return new Date(ms).toISOString()
}

export interface OpenSqliteReplayGuardOptions {
  now?: () => number
  /** how long a claim waits for another process's write lock before failing closed */
  busyTimeoutMs?: number
}

/** Opens the embedded-mode file (RELAYKEY_DATA_DIR/relaykey.db) for payment claims. */
export function openSqliteReplayGuard (file: string, options: OpenSqliteReplayGuardOptions = {}): SqliteReplayGuard {
  const db = openSqliteDatabase(file)
  try {
    db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`)
    return new SqliteReplayGuard(db, { now: options.now, ownsDatabase: true })
  } catch (err) {
    db.close()
    throw err
  }
}
