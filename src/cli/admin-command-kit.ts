// What the admin commands (keys, usage, audit tail, partners/policies/credentials list) share:
// one call to the admin API with a clear 401, option parsing helpers, and a field/value table.
// The HTTP client loads only once the command line has parsed: a usage error answers at once.
import type { AdminClient } from './admin-client.js'
import { CliError, EXIT } from './cli-error.js'
import { printTable, safeText } from './output.js'

/** `--json`, accepted by every admin command */
export const JSON_OPTION = { json: { type: 'boolean' } } as const

/** the admin API of the node the environment names (RELAYKEY_ADMIN_URL, the token) */
export async function connect (): Promise<AdminClient> {
  const { AdminClient } = await import('./admin-client.js')
  return AdminClient.fromEnv()
}

/** the answer's body when its status is `expected` (AdminClient.expect, which names a refused token plainly) */
export async function admin<T = any> (client: AdminClient, method: string, path: string, expected = 200, body?: unknown): Promise<T> {
  return await client.expect<T>(method, path, expected, body)
}

/** `?a=1&b=2` from the members that are set, or '' */
export function queryString (params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) search.set(name, String(value))
  }
  const text = search.toString()
  return text === '' ? '' : `?${text}`
}

/** a string option's value, undefined when not given; an empty value is a usage error */
export function stringOption (values: Record<string, string | boolean | undefined>, name: string): string | undefined {
  const value = values[name]
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value === '') throw new CliError(`--${name}: needs a value`, EXIT.usage)
  return value
}

export function requiredOption (values: Record<string, string | boolean | undefined>, name: string): string {
  const value = stringOption(values, name)
  if (value === undefined) throw new CliError(`--${name}: required (see --help)`, EXIT.usage)
  return value
}

/** a whole number from min to max, else a usage error naming the option */
export function integerOption (values: Record<string, string | boolean | undefined>, name: string, min: number, max: number): number | undefined {
  const raw = stringOption(values, name)
  if (raw === undefined) return undefined
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new CliError(`--${name}: must be a whole number from ${min} to ${max}`, EXIT.usage)
  }
  return Number(raw)
}

/** the single positional argument (an id), else a usage error */
export function onePositional (positionals: string[], what: string): string {
  const value = positionals[0]
  if (value === undefined || value === '') throw new CliError(`${what}: required (see --help)`, EXIT.usage)
  return value
}

export { safeText } from './output.js'

/** a two-column FIELD / VALUE table, for one record */
export function printFields (fields: ReadonlyArray<readonly [string, unknown]>): void {
  printTable(fields, [['field', (f) => f[0]], ['value', (f) => (typeof f[1] === 'string' ? safeText(f[1]) : f[1])]])
}

/** `10/1s burst 20`, or '-' for no limit */
export function rateLimitText (limit: { requests: number; per_seconds: number; burst?: number } | null | undefined): string {
  if (limit === null || limit === undefined) return '-'
  const burst = limit.burst !== undefined && limit.burst !== limit.requests ? ` burst ${limit.burst}` : ''
  return `${limit.requests}/${limit.per_seconds}s${burst}`
}
