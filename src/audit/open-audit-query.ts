// The audit table's read side for the mode: its own small PostgreSQL pool, or the SQLite file.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import { EMBEDDED_DB_FILE } from '../store/open-control-store.js'
import { clientOptions } from '../store/postgres/client-options.js'
import { watchedPostgresSocket } from '../store/postgres/postgres-socket.js'
import type { AuditQuery } from './audit-query.js'
import { PostgresAuditQuery } from './postgres-audit-query.js'
import { SqliteAuditQuery } from './sqlite-audit-query.js'

export function openAuditQuery (config: Config, logger: Logger): AuditQuery {
  if (config.databaseUrl !== null) {
    const socket = watchedPostgresSocket(config.pgStallMs, logger, 'audit query')
    return new PostgresAuditQuery(postgres(config.databaseUrl, clientOptions({ max: 2, socket })))
  }
  const db = new Database(join(config.dataDir, EMBEDDED_DB_FILE), { readonly: true, fileMustExist: true })
  db.pragma('busy_timeout = 5000')
  return new SqliteAuditQuery(db)
}
