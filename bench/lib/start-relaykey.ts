// Starts RelayKey the way an operator does (`node dist/src/cli.js serve`) in embedded mode, on
// free loopback ports with a throw-away data dir, and gives the scenario an admin client.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ChildService } from './child-service.js'
import { freePort } from './ports.js'
import type { ServiceGroup } from './service-group.js'

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url))

export interface RelayKeyOptions {
  workers: number
  /** write a V8 CPU profile of every RelayKey process (primary and workers) into this directory */
  cpuProfDir?: string | null
  /** run RelayKey's processes on these CPUs only (taskset list) */
  cpus?: string | null
  /** extra RELAYKEY_* settings a scenario needs */
  env?: Record<string, string>
}

export interface RelayKey {
  proxyUrl: string
  adminUrl: string
  service: ChildService
  /** one admin API call; rejects on a network error, never on an HTTP status */
  admin<T = unknown> (method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>
  /** the Prometheus text of the admin port's /metrics (every worker's counters summed) */
  metrics (): Promise<string>
}

export async function startRelayKey (group: ServiceGroup, options: RelayKeyOptions): Promise<RelayKey> {
  const port = await freePort()
  const adminPort = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'relaykey-bench-'))
  group.defer('relaykey data dir', () => rmSync(dataDir, { recursive: true, force: true }))
  const adminToken = randomBytes(24).toString('base64url')
  // Only what we set: DATABASE_URL/REDIS_URL from the caller's shell would switch modes, and a
  // NODE_OPTIONS meant for the driver must not profile or slow the proxy.
  const env: Record<string, string> = {
    RELAYKEY_HOST: '127.0.0.1',
    RELAYKEY_PORT: String(port),
    RELAYKEY_ADMIN_HOST: '127.0.0.1',
    RELAYKEY_ADMIN_PORT: String(adminPort),
    RELAYKEY_WORKERS: String(options.workers),
    RELAYKEY_DATA_DIR: dataDir,
    RELAYKEY_LOG_LEVEL: 'warn',
    RELAYKEY_ADMIN_TOKEN: adminToken,
    RELAYKEY_SHUTDOWN_GRACE_MS: '5000',
    ...options.env,
  }
  // node refuses --cpu-prof in NODE_OPTIONS; as node arguments the cluster workers inherit it
  const nodeArgs = options.cpuProfDir == null ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`]
  // cwd is the data dir so a .env in the repository cannot leak into the run
  const service = new ChildService({ name: 'relaykey', script: CLI, args: ['serve'], nodeArgs, env, cwd: dataDir, cpus: options.cpus })
  group.watch(service)
  group.defer('relaykey', () => service.stopCleanly(15_000))

  const proxyUrl = `http://127.0.0.1:${port}`
  const adminUrl = `http://127.0.0.1:${adminPort}`
  const authorization = `Bearer ${adminToken}`
  // 'RelayKey ready' is an info line and the level is warn, so readiness is probed instead:
  // the admin port opens before the workers fork, the proxy port once the first one listens.
  await service.until(async () => (await fetch(`${adminUrl}/admin/health`, { headers: { authorization } })).ok, 'answer on /admin/health', 20_000)
  await service.until(async () => (await fetch(`${proxyUrl}/health`)).ok, 'answer on /health', 20_000)

  return {
    proxyUrl,
    adminUrl,
    service,
    async admin<T> (method: string, path: string, body?: unknown) {
      const res = await fetch(adminUrl + path, {
        method,
        headers: body === undefined ? { authorization } : { authorization, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      const text = await res.text()
      return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T }
    },
    async metrics () {
      const res = await fetch(`${adminUrl}/metrics`, { headers: { authorization } })
      const text = await res.text()
      if (res.status !== 200) throw new Error(`admin GET /metrics answered ${res.status}: ${text.slice(0, 200)}`)
      return text
    },
  }
}
