// Picks the control-store implementation for the mode RelayKey runs in.
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import type { ControlStore } from './control-store.js'
import { openPostgresControlStore } from './postgres/postgres-control-store.js'
import { watchedPostgresSocket } from './postgres/postgres-socket.js'
import { openSqliteControlStore } from './sqlite/sqlite-control-store.js'

export const EMBEDDED_DB_FILE = 'relaykey.db'

export function openControlStore (config: Config, options: { connections: number; logger: Logger }): ControlStore {
  if (config.mode === 'distributed') {
    const socket = watchedPostgresSocket(config.pgStallMs, options.logger, 'control store')
    return openPostgresControlStore(config.databaseUrl!, { max: options.connections, socket })
  }
  return openSqliteControlStore(join(config.dataDir, EMBEDDED_DB_FILE))
}
