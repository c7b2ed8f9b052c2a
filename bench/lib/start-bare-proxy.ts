// Starts bench/bare-proxy.ts (the pass-through baseline) with the given worker count.
import { fileURLToPath } from 'node:url'
import { ChildService } from './child-service.js'
import type { ServiceGroup } from './service-group.js'

const SCRIPT = fileURLToPath(new URL('../bare-proxy.js', import.meta.url))

export interface BareProxy {
  url: string
  service: ChildService
}

export async function startBareProxy (group: ServiceGroup, options: {
  upstreamUrl: string
  workers: number
  cpuProfDir?: string | null
  cpus?: string | null
}): Promise<BareProxy> {
  const service = new ChildService({
    name: 'bare-proxy',
    script: SCRIPT,
    env: { BENCH_UPSTREAM_URL: options.upstreamUrl, BENCH_WORKERS: String(options.workers) },
    ipc: true,
    cpus: options.cpus,
    nodeArgs: options.cpuProfDir == null ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`],
  })
  group.watch(service)
  group.defer('bare-proxy', () => service.stopCleanly())
  const { port } = await service.message<{ type: 'ready'; port: number }>('ready', 20_000)
  return { url: `http://127.0.0.1:${port}`, service }
}
