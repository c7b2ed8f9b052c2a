// What every RelayKey postgres.js client is opened with.
//
// fetch_types off: by default postgres.js asks pg_type for array types on every new connection,
// from inside its protocol handler and without a catch, so a connection lost during that query
// rejects a promise nobody handles — which ends the process (a primary reset by PostgreSQL
// restarting under load died that way). RelayKey binds and reads no array types.
import type postgres from 'postgres'
import type { PostgresSocketFactory } from './postgres-socket.js'

type ClientOptions = postgres.Options<Record<string, postgres.PostgresType>>

export const CLIENT_OPTIONS = {
  onnotice: () => {},
  fetch_types: false,
} as const

/**
 * `options` on top of CLIENT_OPTIONS. `socket` (postgres-socket.ts) is a documented postgres.js
 * option its typings lack, hence the one cast.
 */
export function clientOptions (options: ClientOptions & { socket?: PostgresSocketFactory }): ClientOptions {
  return { ...CLIENT_OPTIONS, ...options } as ClientOptions
}
