// Applies migrations/*.sql to PostgreSQL in name order, once each, recorded in schema_migrations.
// Several nodes may start at the same time: a session advisory lock lets one of them migrate
// while the others wait and then find nothing left to do.
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import postgres from 'postgres'
import { clientOptions } from './client-options.js'

// From dist/src/store/postgres/migrate.js (and src/store/postgres/migrate.ts) to the repo root:
// the .sql files are not compiled, so both layouts share the one migrations/ folder.
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../../migrations/', import.meta.url))

// Any constant works as long as nothing else in the database uses it: 'RKmigrat' in ASCII.
const LOCK_ID = 0x524b6d6967726174n

/** Applies the pending migrations and returns their names (file names), oldest first. */
export async function migrate (sql: postgres.Sql, dir: string = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((name) => name.endsWith('.sql')).sort()
  // Nothing pending: done without a lock or any DDL, so a node running as the application role
  // (which may read schema_migrations but not create tables) starts with auto-migrate on.
  if ((await pendingOf(sql, files)).length === 0) return []
  // Advisory locks belong to a session, so everything runs on one reserved connection.
  const conn = await sql.reserve()
  try {
    await conn`SELECT pg_advisory_lock(${LOCK_ID.toString()}::bigint)`
    try {
      return await applyPending(conn, dir, files)
    } finally {
      await conn`SELECT pg_advisory_unlock(${LOCK_ID.toString()}::bigint)`
    }
  } finally {
    conn.release()
  }
}

/** what start-up could not do about pending migrations; the message names them and the fix */
export class PendingMigrationsError extends Error {
  override readonly name = 'PendingMigrationsError'
}

/**
 * Start-up: applies what is pending (auto-migrate) or, with it off, checks that nothing is.
 * Either way a refusal names the pending migrations and what to run, rather than a bare
 * "permission denied for schema public" from a role that may not create tables.
 */
export async function migrateAtStart (databaseUrl: string, autoMigrate: boolean, dir: string = MIGRATIONS_DIR): Promise<string[]> {
  const sql = postgres(databaseUrl, clientOptions({ max: 1 }))
  try {
    const files = (await readdir(dir)).filter((name) => name.endsWith('.sql')).sort()
    const pending = await pendingOf(sql, files)
    if (pending.length === 0) return []
    const named = `${pending.length === 1 ? '1 migration is' : `${pending.length} migrations are`} pending (${pending.join(', ')})`
    const fix = 'apply them with `npx relaykey migrate` and an administrator\'s DATABASE_URL, then start RelayKey again'
    if (!autoMigrate) throw new PendingMigrationsError(`${named} and RELAYKEY_AUTO_MIGRATE is false: ${fix}`)
    try {
      return await migrate(sql, dir)
    } catch (err) {
      const cause = ((err as Error).cause ?? err) as { code?: string; message?: string }
      if (cause.code !== '42501') throw err // insufficient_privilege
      const [{ role }] = await sql<[{ role: string }]>`SELECT current_user AS role`
      throw new PendingMigrationsError(`${named} and role ${role} may not apply them (${cause.message}): ${fix}`)
    }
  } finally {
    await sql.end({ timeout: 5 })
  }
}

/**
 * the files schema_migrations does not list; all of them when there is no such table or the role
 * may not read it. Anything else (the database unreachable, a wrong password) is thrown as it is.
 */
async function pendingOf (sql: postgres.Sql, files: string[]): Promise<string[]> {
  try {
    const done = new Set((await sql<Array<{ name: string }>>`SELECT name FROM schema_migrations`).map((row) => row.name))
    return files.filter((name) => !done.has(name))
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === '42P01' || code === '42501') return files // undefined_table, insufficient_privilege
    throw err
  }
}

/** Opens a short-lived client for `databaseUrl`, migrates, and closes it. */
export async function runMigrations (databaseUrl: string, dir?: string): Promise<string[]> {
  const sql = postgres(databaseUrl, clientOptions({ max: 1 }))
  try {
    return await migrate(sql, dir)
  } finally {
    await sql.end({ timeout: 5 })
  }
}

async function applyPending (conn: postgres.ReservedSql, dir: string, files: string[]): Promise<string[]> {
  await conn`
    CREATE TABLE IF NOT EXISTS schema_migrations (
      name       text PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now()
    )
  `
  const done = new Set((await conn<Array<{ name: string }>>`SELECT name FROM schema_migrations`).map((row) => row.name))
  const applied: string[] = []
  for (const name of files) {
    if (done.has(name)) continue
    const text = await readFile(join(dir, name), 'utf8')
    // A reserved connection has no begin(); plain BEGIN/COMMIT on it is the same transaction.
    await conn.unsafe('BEGIN')
    try {
      // No parameters: sent as a simple query, so one file may hold many statements.
      await conn.unsafe(text)
      await conn`INSERT INTO schema_migrations (name) VALUES (${name})`
      await conn.unsafe('COMMIT')
    } catch (err) {
      // the statement's error is the one worth reporting, not a failed rollback on a dead socket
      await conn.unsafe('ROLLBACK').catch(() => {})
      throw new Error(`migration ${name} failed: ${(err as Error).message}`, { cause: err })
    }
    applied.push(name)
  }
  return applied
}
