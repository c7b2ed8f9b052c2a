// What every RelayKey postgres.js client is opened with.
//
// fetch_types off: by default postgres.js asks pg_type for array types on every new connection,
// from inside its protocol handler and without a catch, so a connection lost during that query
// rejects a promise nobody handles — which ends the process (a primary reset by PostgreSQL
// restarting under load died that way). RelayKey binds and reads no array types.
export const CLIENT_OPTIONS = {
  onnotice: () => {},
  fetch_types: false,
} as const
