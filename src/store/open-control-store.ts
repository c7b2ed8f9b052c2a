// Picks the control-store implementation for the mode RelayKey runs in.
import { join } from 'node:path'
import type { Config } from '../config/config.js'
import type { ControlStore } from './control-store.js'
import { openPostgresControlStore } from './postgres/postgres-control-store.js'
import { openSqliteControlStore } from './sqlite/sqlite-control-store.js'

export const EMBEDDED_DB_FILE = 'relaykey.db'

export function openControlStore (config: Config, options: { connections: number }): ControlStore {
  if (config.mode === 'distributed') {
    return openPostgresControlStore(config.databaseUrl!, { max: options.connections, stallMs: config.pgStallMs })
  }
  return openSqliteControlStore(join(config.dataDir, EMBEDDED_DB_FILE))
}
