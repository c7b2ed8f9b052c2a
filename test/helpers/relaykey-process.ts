// Runs RelayKey the way an operator does (`node dist/src/cli.js serve`, a cluster of workers)
// on free loopback ports, and talks to its admin API.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './ports.js'

const CLI = new URL('../../src/cli.js', import.meta.url).pathname

/**
 * Data dirs this helper made, removed when the test file's process exits: a test may stop
 * RelayKey and start it again on the same dir (kill -9 and restart), so not on stop().
 */
const madeDataDirs: string[] = []
process.on('exit', () => {
  for (const dir of madeDataDirs) rmSync(dir, { recursive: true, force: true })
})

function madeDataDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'relaykey-data-'))
  madeDataDirs.push(dir)
  return dir
}

export interface RelayKeyProcess {
  proxyUrl: string
  adminUrl: string
  adminToken: string
  dataDir: string
  child: ChildProcess
  /** everything the process wrote to stdout and stderr so far */
  output (): string
  /** sends the signal and resolves with the exit code */
  stop (signal?: NodeJS.Signals): Promise<number | null>
  admin<T = any> (method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>
}

export interface StartOptions {
  env?: Record<string, string>
  workers?: number
  dataDir?: string
  /** give up waiting for readiness after this long */
  timeoutMs?: number
  /** the CLI to run (default: this checkout's dist/src/cli.js) */
  cli?: string
}

export async function startRelayKey (options: StartOptions = {}): Promise<RelayKeyProcess> {
  const port = await freePort()
  const adminPort = await freePort()
  const dataDir = options.dataDir ?? madeDataDir()
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    RELAYKEY_HOST: '127.0.0.1',
    RELAYKEY_PORT: String(port),
    RELAYKEY_ADMIN_PORT: String(adminPort),
    RELAYKEY_WORKERS: String(options.workers ?? 2),
    RELAYKEY_DATA_DIR: dataDir,
    RELAYKEY_LOG_LEVEL: 'info',
    RELAYKEY_SHUTDOWN_GRACE_MS: '5000',
    ...options.env,
  }
  const child = spawn(process.execPath, [options.cli ?? CLI, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: dataDir })
  let output = ''
  child.stdout!.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr!.on('data', (c: Buffer) => { output += c.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))

  const proxyUrl = `http://127.0.0.1:${port}`
  const adminUrl = `http://127.0.0.1:${adminPort}`
  const deadline = Date.now() + (options.timeoutMs ?? 20_000)
  let adminToken = env.RELAYKEY_ADMIN_TOKEN ?? ''
  for (;;) {
    if (child.exitCode !== null) throw new Error(`relaykey exited with ${child.exitCode}:\n${output}`)
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`relaykey did not become ready:\n${output}`)
    }
    if (output.includes('RelayKey ready')) break
    await sleep(50)
  }
  // embedded mode generates the admin token; a distributed node may have named tokens only
  if (adminToken === '' && existsSync(join(dataDir, 'admin-token'))) adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim()

  return {
    proxyUrl,
    adminUrl,
    adminToken,
    dataDir,
    child,
    output: () => output,
    async stop (signal = 'SIGTERM') {
      if (child.exitCode !== null) return child.exitCode
      child.kill(signal)
      return await exited
    },
    async admin (method, path, body) {
      const res = await fetch(adminUrl + path, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      const text = await res.text()
      const parsed = text === '' ? undefined : JSON.parse(text)
      // every exchange against the OpenAPI document (src/admin/openapi.json)
      const { checkAdminExchange } = await import('./openapi-check.js')
      checkAdminExchange(method, path, body, res.status, parsed, res.headers.get('content-type'))
      return { status: res.status, body: parsed }
    },
  }
}

export const TEST_REDIS_URL = process.env.RELAYKEY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/**
 * Distributed-mode environment for one test: its database, the shared (or given) Redis under a
 * key prefix of its own, and fresh secrets. Nodes started with the same object form one cluster.
 */
export function distributedEnv (databaseUrl: string, options: { redisUrl?: string; extra?: Record<string, string> } = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: options.redisUrl ?? TEST_REDIS_URL,
    RELAYKEY_REDIS_PREFIX: `rktest:${randomBytes(4).toString('hex')}`,
    RELAYKEY_ADMIN_TOKEN: randomBytes(24).toString('base64url'),
    RELAYKEY_HMAC_SECRET: randomBytes(32).toString('base64url'),
    RELAYKEY_MASTER_KEY: randomBytes(32).toString('hex'),
    ...options.extra,
  }
}

export interface GovernedSetup {
  partnerId: string
  policyId: string
  credentialId: string
  keyId: string
  key: string
}

/** partner → credential → policy → binding → key, through the admin API, asserting each step */
export async function setUpGovernedPartner (rk: RelayKeyProcess, options: {
  slug?: string
  baseUrl: string
  environment?: string
  auth?: unknown
  secret?: unknown
  allow?: unknown
  customer?: string
  /** more partner fields (tls, retry, …) */
  partner?: Record<string, unknown>
  /** more credential fields (secret parts, …); `secret: null` sends none */
  credential?: Record<string, unknown>
  /** more policy fields (budget, costs, …) */
  policy?: Record<string, unknown>
}): Promise<GovernedSetup> {
  const slug = options.slug ?? 'acme'
  const environment = options.environment ?? 'production'
  const must = async (method: string, path: string, body: unknown): Promise<any> => {
    const res = await rk.admin(method, path, body)
    if (res.status !== 201) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`)
    return res.body
  }
  const partner = await must('POST', '/admin/partners', {
    slug,
    base_urls: { [environment]: options.baseUrl },
    auth: options.auth ?? { type: 'header', name: 'X-App-Token', prefix: '' },
    ...options.partner,
  })
  const credential = await must('POST', `/admin/partners/${slug}/credentials`, {
    name: 'main', environment, secret: options.secret === undefined ? { provider: 'inline', value: 'upstream-secret-value' } : options.secret, ...options.credential,
  })
  const policy = await must('POST', '/admin/policies', {
    name: `${slug}-policy-${Math.random().toString(36).slice(2, 8)}`,
    ...(options.allow === undefined ? {} : { allow: options.allow }),
    ...options.policy,
  })
  await must('POST', '/admin/bindings', { policy: policy.id, partner: slug })
  const key = await must('POST', '/admin/keys', {
    name: 'test key', policy: policy.id, environment, ...(options.customer === undefined ? {} : { customer: options.customer }),
  })
  return { partnerId: partner.id, policyId: policy.id, credentialId: credential.id, keyId: key.id, key: key.key }
}
