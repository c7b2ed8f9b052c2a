// Named admin tokens: RELAYKEY_ADMIN_TOKENS (a JSON array) or RELAYKEY_ADMIN_TOKENS_FILE (a file
// holding the same array, so the tokens need not sit in the environment), each
// `{"name": "ops", "token": "…", "scope": "read" | "write"}`. RELAYKEY_ADMIN_TOKEN, when set, is
// one more: a write token named `admin`. The change log records which name made each change.
import { readFileSync } from 'node:fs'
import { ConfigError } from '../errors.js'

export type AdminScope = 'read' | 'write'

export interface AdminTokenSpec {
  name: string
  token: string
  scope: AdminScope
}

/** RELAYKEY_ADMIN_TOKEN's name; `config-file` is the name RELAYKEY_CONFIG's changes carry */
export const RESERVED_TOKEN_NAMES = new Set(['admin', 'config-file'])
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/
export const MIN_TOKEN_LENGTH = 16
/** what an Authorization header carries as sent: HTTP reads header bytes as latin1 */
const TOKEN = new RegExp(`^[\\x21-\\x7e]{${MIN_TOKEN_LENGTH},}$`)

/** the named tokens of the environment, checked; [] when neither variable is set */
export function parseAdminTokens (env: Record<string, string | undefined>): AdminTokenSpec[] {
  const inline = env.RELAYKEY_ADMIN_TOKENS?.trim() ?? ''
  const file = env.RELAYKEY_ADMIN_TOKENS_FILE?.trim() ?? ''
  if (inline !== '' && file !== '') throw new ConfigError('RELAYKEY_ADMIN_TOKENS', 'set it or RELAYKEY_ADMIN_TOKENS_FILE, not both')
  if (inline !== '') return checkTokens('RELAYKEY_ADMIN_TOKENS', inline)
  if (file === '') return []
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError('RELAYKEY_ADMIN_TOKENS_FILE', `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  return checkTokens('RELAYKEY_ADMIN_TOKENS_FILE', text)
}

/** messages name the entry and field, never a token's value */
function checkTokens (variable: string, text: string): AdminTokenSpec[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new ConfigError(variable, 'must be a JSON array of {"name", "token", "scope"} objects')
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new ConfigError(variable, 'must be a non-empty JSON array of {"name", "token", "scope"} objects')
  const names = new Set<string>()
  const tokens = new Set<string>()
  return parsed.map((entry: unknown, i): AdminTokenSpec => {
    const at = `[${i}]`
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new ConfigError(variable, `${at} must be an object with name, token and scope`)
    const { name, token, scope, ...rest } = entry as Record<string, unknown>
    const unknown = Object.keys(rest)
    if (unknown.length > 0) throw new ConfigError(variable, `${at}.${unknown[0]} is not a field (name, token, scope)`)
    if (typeof name !== 'string' || !NAME.test(name)) throw new ConfigError(variable, `${at}.name must be 1 to 64 letters, digits, "_", ".", "@" or "-", starting with a letter or digit`)
    if (RESERVED_TOKEN_NAMES.has(name)) throw new ConfigError(variable, `${at}.name ${name} is reserved (${name === 'admin' ? 'RELAYKEY_ADMIN_TOKEN' : 'RELAYKEY_CONFIG'} uses it)`)
    if (names.has(name)) throw new ConfigError(variable, `${at}.name ${name} is given twice`)
    if (typeof token !== 'string' || !TOKEN.test(token)) {
      throw new ConfigError(variable, `${at}.token (of ${name}) must be at least ${MIN_TOKEN_LENGTH} printable ASCII characters, no spaces (generate one with \`openssl rand -hex 32\`)`)
    }
    if (tokens.has(token)) throw new ConfigError(variable, `${at}.token (of ${name}) is another entry's token too`)
    if (scope !== 'read' && scope !== 'write') throw new ConfigError(variable, `${at}.scope (of ${name}) must be read or write`)
    names.add(name)
    tokens.add(token)
    return { name, token, scope }
  })
}
