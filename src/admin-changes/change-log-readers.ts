// The change log in seq order, for `relaykey audit verify`: nothing when the table predates this
// release (verify never migrates).
import type Database from 'better-sqlite3'
import type postgres from 'postgres'
import type { AdminChange } from './admin-change.js'
import { postgresChangeRow, sqliteChangeRow } from './change-rows.js'

export async function * readPostgresChanges (sql: postgres.Sql, rowsPerFetch = 1000): AsyncGenerator<AdminChange> {
  const [{ present }] = await sql<[{ present: boolean }]>`SELECT to_regclass('admin_changes') IS NOT NULL AS present`
  if (!present) return
  for await (const rows of sql`SELECT * FROM admin_changes ORDER BY seq`.cursor(rowsPerFetch)) {
    for (const row of rows) yield postgresChangeRow(row)
  }
}

export function * readSqliteChanges (db: Database.Database): Generator<AdminChange> {
  if (db.prepare('SELECT 1 FROM sqlite_master WHERE type = \'table\' AND name = \'admin_changes\'').get() === undefined) return
  for (const row of db.prepare('SELECT * FROM admin_changes ORDER BY seq').iterate() as IterableIterator<Record<string, any>>) yield sqliteChangeRow(row)
}
