// OAuth2 access tokens shared through the embedded SQLite file by the node's workers
// (partner-auth/shared-tokens.ts; the oauth2_tokens table, schema step 12).
import type Database from 'better-sqlite3'
import { tokenHash, type CachedToken, type SharedTokens, type TokenSeal } from '../../partner-auth/shared-tokens.js'
import { openSqliteDatabase } from './schema.js'

export class SqliteSharedTokens implements SharedTokens {
  readonly #db: Database.Database
  readonly #seal: TokenSeal
  readonly #read: Database.Statement
  readonly #claim: Database.Statement
  readonly #write: Database.Statement
  readonly #release: Database.Statement
  readonly #drop: Database.Statement

  constructor (file: string, seal: TokenSeal) {
    this.#db = openSqliteDatabase(file)
    this.#seal = seal
    this.#read = this.#db.prepare('SELECT ciphertext FROM oauth2_tokens WHERE credential_id = ? AND ciphertext IS NOT NULL AND expires_at > ?')
    this.#claim = this.#db.prepare(`INSERT INTO oauth2_tokens (credential_id, ciphertext, expires_at, lock_until) VALUES (@id, NULL, 0, @until)
      ON CONFLICT (credential_id) DO UPDATE SET lock_until = @until WHERE lock_until <= @now`)
    this.#write = this.#db.prepare(`INSERT INTO oauth2_tokens (credential_id, ciphertext, expires_at, lock_until) VALUES (@id, @sealed, @expires, 0)
      ON CONFLICT (credential_id) DO UPDATE SET ciphertext = @sealed, expires_at = @expires, lock_until = 0`)
    this.#release = this.#db.prepare('UPDATE oauth2_tokens SET lock_until = 0 WHERE credential_id = ?')
    this.#drop = this.#db.prepare('UPDATE oauth2_tokens SET ciphertext = NULL WHERE credential_id = ? AND substr(ciphertext, 1, ?) = ?')
  }

  async read (id: string): Promise<CachedToken | null> {
    const row = this.#read.get(id, Date.now()) as { ciphertext: string } | undefined
    return row === undefined ? null : this.#seal.open(row.ciphertext)
  }

  async claim (id: string, ms: number): Promise<boolean> {
    const now = Date.now()
    return this.#claim.run({ id, until: now + Math.ceil(ms), now }).changes === 1
  }

  async write (id: string, token: CachedToken): Promise<void> {
    this.#write.run({ id, sealed: this.#seal.seal(token), expires: token.expiresAt })
  }

  async release (id: string): Promise<void> {
    this.#release.run(id)
  }

  async drop (id: string, token: string): Promise<void> {
    const prefix = `h.${tokenHash(token)}.`
    this.#drop.run(id, prefix.length, prefix)
  }

  async close (): Promise<void> {
    this.#db.close()
  }
}
