// Shared by the reliability tests: one RelayKey (embedded mode, one worker, so breakers and
// budgets are one process's state), a partner per test with its own reliability settings, and
// a client that returns what a user would see.
import { randomBytes } from 'node:crypto'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { setUpGovernedPartner, startRelayKey, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'

export interface Seen {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  code: string | undefined
  elapsedMs: number
}

/** one RelayKey (one worker unless told) for a suite, and a fresh mock partner whenever a test wants one */
export class ReliabilityBench {
  rk!: RelayKeyProcess
  readonly #workers: number
  readonly #partners: MockPartner[] = []

  constructor (options: { workers?: number } = {}) {
    this.#workers = options.workers ?? 1
  }

  async start (): Promise<void> {
    this.rk = await startRelayKey({ workers: this.#workers })
  }

  async partner (): Promise<MockPartner> {
    const p = await startMockPartner()
    this.#partners.push(p)
    return p
  }

  async stop (): Promise<void> {
    await this.rk.stop()
    await Promise.all(this.#partners.map((p) => p.close()))
  }
}

export function uniqueSlug (name: string): string {
  return `${name}-${randomBytes(3).toString('hex')}`
}

/** a governed partner whose retry, circuit_breaker and timeouts settings are `settings` */
export async function partnerWith (rk: RelayKeyProcess, baseUrl: string, slug: string, settings: Record<string, unknown>): Promise<GovernedSetup> {
  const setup = await setUpGovernedPartner(rk, { slug, baseUrl })
  const patched = await rk.admin('PATCH', `/admin/partners/${slug}`, settings)
  assert.equal(patched.status, 200, JSON.stringify(patched.body))
  return setup
}

export async function call (rk: RelayKeyProcess, key: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Seen> {
  const started = performance.now()
  const res = await request(`${rk.proxyUrl}/proxy/${path}`, {
    method: (init.method ?? 'GET') as 'GET',
    headers: { 'x-relaykey': key, ...init.headers },
    body: init.body,
  })
  const text = await res.body.text()
  let code: string | undefined
  try { code = JSON.parse(text)?.error?.code } catch { code = undefined }
  return { status: res.statusCode, headers: res.headers, text, code, elapsedMs: performance.now() - started }
}

/** the audit event of the request that got `seen` (written in batches: waits for it) */
export async function auditOf (rk: RelayKeyProcess, keyId: string, seen: Seen): Promise<Record<string, any>> {
  const requestId = seen.headers['x-relaykey-request-id']
  for (let i = 0; i < 50; i++) {
    const page = await rk.admin('GET', `/admin/audit?key_id=${keyId}&limit=100`)
    const event = page.body.events?.find((e: { request_id: string }) => e.request_id === requestId)
    if (event !== undefined) return event
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`no audit event for request ${String(requestId)}`)
}

export async function metricsText (rk: RelayKeyProcess): Promise<string> {
  const res = await request(`${rk.adminUrl}/metrics`, { headers: { authorization: `Bearer ${rk.adminToken}` } })
  return res.body.text()
}
