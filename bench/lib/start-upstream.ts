// Starts bench/upstream-server.ts in its own process, so the stand-in partner never shares an
// event loop with the load generator or the proxy under test.
import { fileURLToPath } from 'node:url'
import { ChildService } from './child-service.js'
import type { ServiceGroup } from './service-group.js'

const SCRIPT = fileURLToPath(new URL('../upstream-server.js', import.meta.url))

export interface Upstream {
  url: string
  service: ChildService
}

export async function startUpstream (group: ServiceGroup, options: { cpus?: string | null } = {}): Promise<Upstream> {
  const service = new ChildService({ name: 'upstream', script: SCRIPT, env: {}, ipc: true, cpus: options.cpus })
  group.watch(service)
  group.defer('upstream', () => service.stopCleanly())
  const { port } = await service.message<{ type: 'ready'; port: number }>('ready', 10_000)
  return { url: `http://127.0.0.1:${port}`, service }
}
