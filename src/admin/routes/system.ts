// /admin/health, /admin/openapi.json and /metrics on the admin port.
import { readFile } from 'node:fs/promises'
import type { Router } from '../../http/router.js'
import { ok, type AdminHandler } from '../reply.js'

// Prometheus text exposition format 0.0.4, as prom-client produces it.
const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

// The OpenAPI document of this API is kept in the source tree (tsc does not copy .json files to
// dist/): from dist/src/admin/routes/system.js that is four levels up, then src/admin/.
const OPENAPI_FILE = new URL('../../../../src/admin/openapi.json', import.meta.url)

/** GET /ready on the admin port: whether the stores answer, and what in the configuration cannot serve */
export interface ReadinessReport {
  /** ready: stores answer, nothing misconfigured; degraded: stores answer, something is; unavailable: a store does not answer */
  status: 'ready' | 'degraded' | 'unavailable'
  stores: Record<string, 'ok' | string>
  checked_at: string | null
  check_error: string | null
  misconfigurations: unknown[]
}

export function registerSystemRoutes (router: Router<AdminHandler>, metrics: (() => Promise<string>) | null, readiness: (() => Promise<ReadinessReport>) | null): void {
  router.on('GET', '/admin/health', async () => ok({ status: 'ok' }))
  if (readiness !== null) {
    router.on('GET', '/ready', async () => {
      const report = await readiness()
      return { kind: 'json', status: report.status === 'unavailable' ? 503 : 200, body: report }
    })
  }
  router.on('GET', '/admin/openapi.json', async () => ok(await openApiDocument()))
  // Without a metrics source the route does not exist, so /metrics answers 404 like any unknown path.
  if (metrics !== null) {
    router.on('GET', '/metrics', async () => ({ kind: 'text', status: 200, body: await metrics(), contentType: METRICS_CONTENT_TYPE }))
  }
}

// Read on first request, not at start-up: a missing file costs this one route (500), not the server.
let openApi: Promise<unknown> | null = null

function openApiDocument (): Promise<unknown> {
  if (openApi === null) {
    const reading = readFile(OPENAPI_FILE, 'utf8').then((text) => JSON.parse(text) as unknown)
    // a failed read is not kept: the next request tries again
    reading.catch(() => { if (openApi === reading) openApi = null })
    openApi = reading
  }
  return openApi
}
