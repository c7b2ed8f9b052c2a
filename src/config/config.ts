// Configuration from the environment (the README's settings table), validated once at start. Every problem
// becomes a ConfigError whose message is the one line the operator reads.
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { ConfigError } from '../errors.js'
import { parseAdminTokens, type AdminTokenSpec } from './admin-tokens.js'
import { parseEgressAllow } from '../http/egress-policy.js'
import { secretFilesDirProblem } from '../secrets/secret-files-dir.js'
import { isClusterUrl, parseClusterUrl } from './redis-cluster-url.js'

export type Mode = 'embedded' | 'distributed'

export interface Config {
  mode: Mode
  port: number
  host: string
  adminPort: number
  adminHost: string
  workers: number
  /** RELAYKEY_ADMIN_TOKEN, the write token named `admin`; null in embedded mode until the embedded secrets are loaded, and in distributed mode when RELAYKEY_ADMIN_TOKENS has a write token instead */
  adminToken: string | null
  /** RELAYKEY_ADMIN_TOKENS or RELAYKEY_ADMIN_TOKENS_FILE: the named tokens besides `admin` */
  adminTokens: AdminTokenSpec[]
  hmacSecret: Buffer | null
  masterKey: Buffer | null
  databaseUrl: string | null
  /**
   * where clients reach the proxy port (RELAYKEY_PUBLIC_URL: scheme, host and any path prefix,
   * no trailing slash), for URLs RelayKey hands out — x402's resource.url. null: the request's
   * own Host over http.
   */
  publicUrl: string | null
  redisUrl: string | null
  /** prefix of every Redis key and channel, so several deployments (or test runs) can share one Redis */
  redisPrefix: string
  dataDir: string
  /** RELAYKEY_CONFIG: a config file that is the source of truth (embedded mode only); null: none */
  configFile: string | null
  logLevel: string
  autoMigrate: boolean
  /** how long a cached key context may live without an invalidation message */
  keyCacheTtlMs: number
  keyCacheMax: number
  /** how long SIGTERM waits for in-flight requests before closing them */
  shutdownGraceMs: number
  /** slow clients: all request headers within this long */
  clientHeadersTimeoutMs: number
  /** slow clients: the whole request (headers and body, not the response) within this long */
  clientRequestTimeoutMs: number
  /**
   * a client that stops reading a response for this long is cut off. A client waiting for a
   * slow partner is not idle: the partner's timeouts bound that wait.
   */
  clientIdleTimeoutMs: number
  /** request bodies up to this size are kept so a retry can send them again */
  retryBufferBytes: number
  /** request bodies held to be signed (hmac, jwt partners), per worker */
  signedBodyMemoryBytes: number
  /** a paid request's upstream answer up to this size is held until the payment settles */
  paymentBufferBytes: number
  /** RELAYKEY_SECRET_FILES_DIR: the only directory the file secret provider reads; null: none */
  secretFilesDir: string | null
  /** RELAYKEY_EGRESS_ALLOW's hosts and CIDRs; null: any address but link-local and metadata ones */
  egressAllow: string[] | null
  /** a limits/budget decision the store has not answered within this long fails (503 or fail-open) */
  governanceTimeoutMs: number
  /** a key-cache miss the control store has not answered by then is refused (503) */
  keyLoadTimeoutMs: number
  /** an admin call whose stores have not answered by then gets 503 governance_unavailable */
  adminTimeoutMs: number
  /** a PostgreSQL connection (control store, usage queries) waiting this long for any answer is closed and replaced; null: never */
  pgStallMs: number | null
  /** share of forwarded requests that get an access-log line (refusals always do) */
  accessLogSample: number
  /** false only to measure audit's cost in a benchmark (RELAYKEY_AUDIT=off); never in production */
  auditEnabled: boolean
  /** how often the local audit log is fdatasynced: 'always' (before each answer ends), an interval in ms, or 'never' */
  auditFsync: 'always' | 'never' | number
  /** workers admit hot keys from leases (RELAYKEY_LEASES=off: one store decision per request) */
  leasesEnabled: boolean
}

type Env = Record<string, string | undefined>

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

/** `readAdminTokens`: false in a worker, which serves no admin API (and must start even if the tokens file changed) */
export function loadConfig (env: Env = process.env, { readAdminTokens = true }: { readAdminTokens?: boolean } = {}): Config {
  // Every variable is read even after a problem, so one message names them all.
  const problems: ConfigError[] = []
  /** parse() or, when it finds a problem, undefined: never returned, the problems are thrown below */
  const take = <T>(parse: () => T): T => {
    try {
      return parse()
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      problems.push(err)
      return undefined as T
    }
  }
  const databaseUrl = nonEmpty(env.DATABASE_URL)
  const redisUrl = nonEmpty(env.REDIS_URL)
  if ((databaseUrl === null) !== (redisUrl === null)) {
    const missing = databaseUrl === null ? 'DATABASE_URL' : 'REDIS_URL'
    problems.push(new ConfigError(missing, 'distributed mode needs both DATABASE_URL and REDIS_URL: set it, or unset the other for embedded mode'))
  }
  // one URL alone: the operator meant distributed mode, so its other requirements are named too
  const mode: Mode = databaseUrl === null && redisUrl === null ? 'embedded' : 'distributed'
  if (databaseUrl !== null) take(() => checkUrl('DATABASE_URL', databaseUrl, ['postgres:', 'postgresql:']))
  if (redisUrl !== null) take(() => checkRedisUrl(redisUrl))

  const adminToken = take(() => parseAdminToken(env.RELAYKEY_ADMIN_TOKEN))
  const tokensBefore = problems.length
  const adminTokens = readAdminTokens ? take(() => parseAdminTokens(env)) ?? [] : []
  const tokensRead = problems.length === tokensBefore
  if (adminToken != null && adminTokens.some((t) => t.token === adminToken)) {
    problems.push(new ConfigError('RELAYKEY_ADMIN_TOKENS', 'holds RELAYKEY_ADMIN_TOKEN\'s value under another name: give each name its own token'))
  }
  const hmacSecret = take(() => parseHmacSecret(env.RELAYKEY_HMAC_SECRET))
  const masterKey = take(() => parseMasterKey(env.RELAYKEY_MASTER_KEY))
  if (mode === 'distributed') {
    // (a malformed token list is named already; a worker reads no list and needs no token)
    if (readAdminTokens && tokensRead && nonEmpty(env.RELAYKEY_ADMIN_TOKEN) === null && !adminTokens.some((t) => t.scope === 'write')) {
      problems.push(new ConfigError('RELAYKEY_ADMIN_TOKEN', `required in distributed mode, unless RELAYKEY_ADMIN_TOKENS has a write token ${GENERATE}`))
    }
    if (nonEmpty(env.RELAYKEY_HMAC_SECRET) === null) problems.push(new ConfigError('RELAYKEY_HMAC_SECRET', `required in distributed mode (at least 32 bytes, ${GENERATE.slice(1)}`))
  }

  const logLevel = env.RELAYKEY_LOG_LEVEL ?? 'info'
  if (!LOG_LEVELS.has(logLevel)) {
    problems.push(new ConfigError('RELAYKEY_LOG_LEVEL', `must be one of ${[...LOG_LEVELS].join(', ')}`))
  }

  const dataDir = resolve(env.RELAYKEY_DATA_DIR ?? './data')
  const config: Config = {
    mode,
    port: take(() => port(env, 'RELAYKEY_PORT', 8080)),
    host: env.RELAYKEY_HOST ?? '0.0.0.0',
    adminPort: take(() => port(env, 'RELAYKEY_ADMIN_PORT', 8081)),
    adminHost: env.RELAYKEY_ADMIN_HOST ?? '127.0.0.1',
    workers: take(() => integer(env, 'RELAYKEY_WORKERS', availableParallelism(), 1, 256)),
    adminToken,
    adminTokens,
    hmacSecret,
    masterKey,
    publicUrl: take(() => publicUrl(env.RELAYKEY_PUBLIC_URL)),
    databaseUrl,
    redisUrl,
    redisPrefix: take(() => redisPrefix(env.RELAYKEY_REDIS_PREFIX)),
    dataDir,
    // the mode it runs in: with one URL missing that is named above, not blamed on RELAYKEY_CONFIG
    configFile: take(() => configFile(env.RELAYKEY_CONFIG, databaseUrl !== null && redisUrl !== null ? 'distributed' : 'embedded')),
    logLevel,
    autoMigrate: take(() => boolean(env, 'RELAYKEY_AUTO_MIGRATE', true)),
    keyCacheTtlMs: take(() => integer(env, 'RELAYKEY_KEY_CACHE_TTL_MS', 30_000, 100, 3_600_000)),
    keyCacheMax: take(() => integer(env, 'RELAYKEY_KEY_CACHE_MAX', 100_000, 1, 10_000_000)),
    shutdownGraceMs: take(() => integer(env, 'RELAYKEY_SHUTDOWN_GRACE_MS', 10_000, 0, 600_000)),
    ...take(() => clientTimeouts(env)),
    clientIdleTimeoutMs: take(() => integer(env, 'RELAYKEY_CLIENT_IDLE_TIMEOUT_MS', 120_000, 100, 3_600_000)),
    retryBufferBytes: take(() => integer(env, 'RELAYKEY_RETRY_BUFFER_BYTES', 64 * 1024, 0, 16 * 1024 * 1024)),
    signedBodyMemoryBytes: take(() => integer(env, 'RELAYKEY_SIGNED_BODY_MEMORY_BYTES', 256 * 1024 * 1024, 1024 * 1024, 16 * 1024 * 1024 * 1024)),
    paymentBufferBytes: take(() => integer(env, 'RELAYKEY_PAYMENT_BUFFER_BYTES', 1024 * 1024, 0, 64 * 1024 * 1024)),
    secretFilesDir: take(() => secretFilesDir(env.RELAYKEY_SECRET_FILES_DIR, dataDir)),
    egressAllow: take(() => egressAllow(env.RELAYKEY_EGRESS_ALLOW)),
    governanceTimeoutMs: take(() => integer(env, 'RELAYKEY_GOVERNANCE_TIMEOUT_MS', 250, 10, 60_000)),
    keyLoadTimeoutMs: take(() => integer(env, 'RELAYKEY_KEY_LOAD_TIMEOUT_MS', 2_000, 50, 60_000)),
    adminTimeoutMs: take(() => integer(env, 'RELAYKEY_ADMIN_TIMEOUT_MS', 15_000, 100, 600_000)),
    pgStallMs: take(() => stallMs(env)),
    accessLogSample: take(() => fraction(env, 'RELAYKEY_ACCESS_LOG_SAMPLE', 1)),
    auditEnabled: take(() => onOff(env, 'RELAYKEY_AUDIT')),
    auditFsync: take(() => fsyncPolicy(env, 'RELAYKEY_AUDIT_FSYNC')),
    leasesEnabled: take(() => onOff(env, 'RELAYKEY_LEASES')),
  }
  if (problems.length > 0) throw ConfigError.combine(problems)
  return config
}

function egressAllow (value: string | undefined): string[] | null {
  if (value === undefined || value.trim() === '') return null
  const parsed = parseEgressAllow(value)
  if ('problem' in parsed) throw new ConfigError('RELAYKEY_EGRESS_ALLOW', parsed.problem)
  return parsed.entries
}

function configFile (value: string | undefined, mode: string): string | null {
  if (value === undefined || value.trim() === '') return null
  if (mode !== 'embedded') throw new ConfigError('RELAYKEY_CONFIG', 'is for embedded mode; in distributed mode apply the file with `relaykey config apply` (from CI), so every node serves the same configuration')
  return resolve(value.trim())
}

function secretFilesDir (value: string | undefined, dataDir: string): string | null {
  if (value === undefined || value === '') return null
  const problem = secretFilesDirProblem(value, dataDir)
  if (problem !== null) throw new ConfigError('RELAYKEY_SECRET_FILES_DIR', problem)
  return resolve(value)
}

/** node:http refuses a request timeout shorter than the headers timeout (the workers would die) */
function clientTimeouts (env: Env): { clientHeadersTimeoutMs: number; clientRequestTimeoutMs: number } {
  const headers = integer(env, 'RELAYKEY_CLIENT_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000)
  const request = integer(env, 'RELAYKEY_CLIENT_REQUEST_TIMEOUT_MS', 300_000, 100, 3_600_000)
  if (request < headers) {
    throw new ConfigError('RELAYKEY_CLIENT_REQUEST_TIMEOUT_MS', `must be at least RELAYKEY_CLIENT_HEADERS_TIMEOUT_MS (${headers}): the whole request includes its headers`)
  }
  return { clientHeadersTimeoutMs: headers, clientRequestTimeoutMs: request }
}

function redisPrefix (raw: string | undefined): string {
  const value = nonEmpty(raw) ?? 'relaykey'
  if (!/^[A-Za-z0-9:_-]{1,64}$/.test(value)) throw new ConfigError('RELAYKEY_REDIS_PREFIX', 'must be 1 to 64 letters, digits, ":", "_" or "-"')
  return value
}

function nonEmpty (value: string | undefined): string | null {
  return value === undefined || value.trim() === '' ? null : value.trim()
}

function checkUrl (variable: string, value: string, protocols: string[]): void {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError(variable, 'is not a valid URL')
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(variable, `must start with ${protocols.map((p) => p + '//').join(' or ')}`)
  }
}

/** one URL, or a Redis Cluster's `redis+cluster://host1:port,host2:port` list of seed nodes */
function checkRedisUrl (value: string): void {
  if (!isClusterUrl(value)) return checkUrl('REDIS_URL', value, ['redis:', 'rediss:'])
  try {
    parseClusterUrl(value)
  } catch (err) {
    throw new ConfigError('REDIS_URL', (err as Error).message)
  }
}

/** 0 turns the watchdog off; below a second it would close connections under ordinary queries */
function stallMs (env: Env): number | null {
  const ms = integer(env, 'RELAYKEY_PG_STALL_MS', 10_000, 0, 600_000)
  if (ms === 0) return null
  if (ms < 1_000) throw new ConfigError('RELAYKEY_PG_STALL_MS', 'must be 0 (off) or at least 1000')
  return ms
}

function publicUrl (raw: string | undefined): string | null {
  const value = nonEmpty(raw)
  if (value === null) return null
  checkUrl('RELAYKEY_PUBLIC_URL', value, ['http:', 'https:'])
  const url = new URL(value)
  if (url.search !== '' || url.hash !== '' || value.includes('?') || value.includes('#')) {
    throw new ConfigError('RELAYKEY_PUBLIC_URL', 'must be scheme, host and an optional path prefix, without query or fragment')
  }
  if (url.username !== '' || url.password !== '') throw new ConfigError('RELAYKEY_PUBLIC_URL', 'must not carry credentials')
  return url.origin + url.pathname.replace(/\/+$/, '')
}

function port (env: Env, variable: string, fallback: number): number {
  return integer(env, variable, fallback, 0, 65535)
}

function integer (env: Env, variable: string, fallback: number, min: number, max: number): number {
  const raw = nonEmpty(env[variable])
  if (raw === null) return fallback
  if (!/^\d+$/.test(raw)) throw new ConfigError(variable, `must be a whole number from ${min} to ${max}`)
  const value = Number(raw)
  if (value < min || value > max) throw new ConfigError(variable, `must be a whole number from ${min} to ${max}`)
  return value
}

/** a switch that is on unless set to off */
function onOff (env: Env, variable: string): boolean {
  const value = nonEmpty(env[variable])
  if (value === null || value === 'on') return true
  if (value === 'off') return false
  throw new ConfigError(variable, 'must be on or off')
}

/** like Redis' appendfsync: always, never, or an interval in ms (default 1000) */
function fsyncPolicy (env: Env, variable: string): 'always' | 'never' | number {
  const raw = nonEmpty(env[variable])
  if (raw === 'always' || raw === 'never') return raw
  if (raw === null) return 1000
  const ms = /^\d+$/.test(raw) ? Number(raw) : Number.NaN
  if (!(ms >= 1 && ms <= 60_000)) throw new ConfigError(variable, 'must be always, never, or an interval in ms from 1 to 60000')
  return ms
}

function fraction (env: Env, variable: string, fallback: number): number {
  const raw = nonEmpty(env[variable])
  if (raw === null) return fallback
  const value = Number(raw)
  if (!/^(0|1|0?\.\d+|1\.0*)$/.test(raw) || value < 0 || value > 1) throw new ConfigError(variable, 'must be a number from 0 to 1')
  return value
}

function boolean (env: Env, variable: string, fallback: boolean): boolean {
  const raw = nonEmpty(env[variable])
  if (raw === null) return fallback
  if (/^(true|1|yes)$/i.test(raw)) return true
  if (/^(false|0|no)$/i.test(raw)) return false
  throw new ConfigError(variable, 'must be true or false')
}

/** how to make a secret, in every message that asks for one */
const GENERATE = '(generate one with `openssl rand -hex 32`)'

function parseAdminToken (raw: string | undefined): string | null {
  const value = nonEmpty(raw)
  if (value !== null && value.length < 16) throw new ConfigError('RELAYKEY_ADMIN_TOKEN', `must be at least 16 characters ${GENERATE}`)
  return value
}

function parseHmacSecret (raw: string | undefined): Buffer | null {
  const value = nonEmpty(raw)
  if (value === null) return null
  const bytes = Buffer.from(value, 'utf8')
  if (bytes.length < 32) throw new ConfigError('RELAYKEY_HMAC_SECRET', `must be at least 32 bytes ${GENERATE}`)
  return bytes
}

/** 32 bytes, given as 64 hex characters or base64 */
export function parseMasterKey (raw: string | undefined): Buffer | null {
  const value = nonEmpty(raw)
  if (value === null) return null
  const bytes = /^[0-9a-fA-F]{64}$/.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64')
  if (bytes.length !== 32 || (!/^[0-9a-fA-F]{64}$/.test(value) && !/^[A-Za-z0-9+/_-]+={0,2}$/.test(value))) {
    throw new ConfigError('RELAYKEY_MASTER_KEY', `must be 32 bytes given as 64 hex characters or base64 ${GENERATE}`)
  }
  return bytes
}
