// /admin/health and /metrics on the admin port.
import type { Router } from '../../http/router.js'
import { ok, type AdminHandler } from '../reply.js'

// Prometheus text exposition format 0.0.4, as prom-client produces it.
const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

export function registerSystemRoutes (router: Router<AdminHandler>, metrics: (() => Promise<string>) | null): void {
  router.on('GET', '/admin/health', async () => ok({ status: 'ok' }))
  // Without a metrics source the route does not exist, so /metrics answers 404 like any unknown path.
  if (metrics !== null) {
    router.on('GET', '/metrics', async () => ({ kind: 'text', status: 200, body: await metrics(), contentType: METRICS_CONTENT_TYPE }))
  }
}
