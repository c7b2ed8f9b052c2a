// Scenario: how many small GET requests per second RelayKey forwards, governed (key check, key
// cache hit, policy allow list, credential injection, header hygiene, request id) next to a bare
// pass-through on the same upstream with the same worker count. Run: npm run bench [-- --help]
//
//   autocannon (this process) ──▶ bare-proxy (cluster) ─────────────┐
//                              ├─▶ RelayKey  (cluster) ─────────────┼─▶ upstream-server (own process)
//                              └─▶ RelayKey, audit off (cluster) ───┘
//
// The audit-off instance (RELAYKEY_AUDIT=off, a benchmark-only switch) prices the audit
// pipeline: governed must stay within 5 % of it. `signed` is the governed instance's second
// partner, whose auth is `hmac` with the Sumsub preset: every request signed (HMAC-SHA256 over
// timestamp, method, path and body), the price of signing beside `governed`. Both run in embedded mode (SQLite), or with
// --distributed on the local PostgreSQL (audit by COPY) and Redis, each with its own database.
//
// Targets are driven one at a time, in an order that rotates each round, with identical
// autocannon settings; each gets a discarded warm-up first. Any non-2xx or error fails the run.
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { checkTarget } from './lib/check-target.js'
import { pinDriver } from './lib/cpu-pinning.js'
import { openDistributedStores } from './lib/distributed-stores.js'
import { createGovernedPartner } from './lib/governed-partner.js'
import { problemsOf, runLoad, type LoadSettings, type LoadTarget } from './lib/load.js'
import { measuredRun, type MeasuredRun } from './lib/measured-run.js'
import { printReport } from './lib/report.js'
import { roundOrder } from './lib/round-order.js'
import { runScenario } from './lib/service-group.js'
import { loadSettings, type BenchSettings } from './lib/settings.js'
import { startBareProxy } from './lib/start-bare-proxy.js'
import { startRelayKey } from './lib/start-relaykey.js'
import { startUpstream } from './lib/start-upstream.js'
import { UPSTREAM_BODY } from './lib/upstream-body.js'

const PIPELINING = 1
const RATIO_TARGET = 0.9
/** audit on must cost at most 5 % of the governed throughput */
const AUDIT_RATIO_TARGET = 0.95
/** the same request line and headers go to both targets; only the origin differs */
const PATH = '/proxy/bench/resources/items/42?view=full'
const SIGNED_PATH = '/proxy/bench-signed/resources/items/42?view=full'

async function scenario (settings: BenchSettings): Promise<void> {
  await runScenario(async (group) => {
    const loadAtStart = loadavg()
    const pinning = settings.pin ? pinDriver() : null
    const upstream = await startUpstream(group, { cpus: pinning?.driver })
    const profiles = settings.cpuProfDir
    const bare = await startBareProxy(group, {
      upstreamUrl: upstream.url,
      workers: settings.workers,
      cpuProfDir: profiles === null ? null : join(profiles, 'bare'),
      cpus: pinning?.proxy,
    })
    // distributed: each RelayKey on a database and Redis prefix of its own, as two deployments
    const storesEnv = async (): Promise<Record<string, string>> => settings.distributed ? (await openDistributedStores(group)).env : {}
    const relaykey = await startRelayKey(group, {
      workers: settings.workers,
      cpuProfDir: profiles === null ? null : join(profiles, 'relaykey'),
      cpus: pinning?.proxy,
      env: await storesEnv(),
    })
    const unaudited = await startRelayKey(group, {
      workers: settings.workers,
      cpuProfDir: profiles === null ? null : join(profiles, 'relaykey-audit-off'),
      cpus: pinning?.proxy,
      env: { ...await storesEnv(), RELAYKEY_AUDIT: 'off' },
    })
    const partnerSettings = { slug: 'bench', upstreamUrl: upstream.url, allow: [{ method: 'GET', path: '/resources/items/*' }] }
    const partner = await createGovernedPartner(relaykey, partnerSettings)
    const unauditedPartner = await createGovernedPartner(unaudited, partnerSettings)
    const signedPartner = await createGovernedPartner(relaykey, {
      ...partnerSettings,
      slug: 'bench-signed',
      auth: { type: 'hmac', preset: 'sumsub' },
      secretParts: { signing_secret: { provider: 'inline', value: 'bench-signing-secret-0123456789' } },
    })

    const headers = { 'x-relaykey': partner.key, accept: 'application/json' }
    const targets: LoadTarget[] = [
      { name: 'bare', url: bare.url + PATH, headers, pid: bare.service.pid },
      { name: 'governed', url: relaykey.proxyUrl + PATH, headers, pid: relaykey.service.pid },
      { name: 'audit-off', url: unaudited.proxyUrl + PATH, headers: { ...headers, 'x-relaykey': unauditedPartner.key }, pid: unaudited.service.pid },
      { name: 'signed', url: relaykey.proxyUrl + SIGNED_PATH, headers: { ...headers, 'x-relaykey': signedPartner.key }, pid: relaykey.service.pid },
    ]
    await checkTarget(targets[0]!, { status: 200, body: UPSTREAM_BODY })
    await checkTarget(targets[1]!, { status: 200, body: UPSTREAM_BODY, headers: ['x-relaykey-request-id'] })
    await checkTarget(targets[2]!, { status: 200, body: UPSTREAM_BODY, headers: ['x-relaykey-request-id'] })
    await checkTarget(targets[3]!, { status: 200, body: UPSTREAM_BODY, headers: ['x-relaykey-request-id'] })

    const measured: LoadSettings = { connections: settings.connections, pipelining: PIPELINING, durationSeconds: settings.durationSeconds }
    const warmup: LoadSettings = { ...measured, durationSeconds: settings.warmupSeconds }
    const runs: MeasuredRun[] = []
    const problems: string[] = []
    const warmed = new Set<string>()
    for (let round = 1; round <= settings.rounds; round++) {
      for (const target of roundOrder(targets, round)) {
        if (!warmed.has(target.name) && warmup.durationSeconds > 0) {
          progress(`warm-up  ${target.name} (${warmup.durationSeconds} s)`)
          const warm = problemsOf(await runLoad(target, warmup))
          if (warm.length > 0) throw new Error(`during warm-up: ${warm.join('; ')}`)
        }
        warmed.add(target.name)
        progress(`round ${round}  ${target.name} (${measured.durationSeconds} s)`)
        const run = await measuredRun(round, target, measured, upstream.service.pid)
        runs.push(run)
        problems.push(...problemsOf(run.result))
      }
    }

    printReport({
      title: 'proxy-throughput: governed (RelayKey) vs bare pass-through',
      settings: `workers ${settings.workers}, connections ${settings.connections}, pipelining ${PIPELINING}, ` +
        `${settings.durationSeconds} s per run after a ${settings.warmupSeconds} s warm-up per target, ` +
        `${settings.rounds} round(s), GET ${PATH} → ${UPSTREAM_BODY.length}-byte JSON` +
        (pinning === null ? '' : `, pinned: driver + upstream on CPU ${pinning.driver}, proxies on CPU ${pinning.proxy}`) +
        (settings.distributed ? ', distributed mode (PostgreSQL and Redis unpinned; audit by COPY)' : ', embedded mode (SQLite)'),
      loadAtStart,
      targets: targets.map((t) => t.name),
      runs,
      comparisons: [
        { subject: 'governed', baseline: 'bare', target: RATIO_TARGET },
        { subject: 'audit-off', baseline: 'bare', target: RATIO_TARGET },
        { subject: 'governed', baseline: 'audit-off', target: AUDIT_RATIO_TARGET },
        { subject: 'signed', baseline: 'governed', target: null },
      ],
    })
    if (problems.length > 0) throw new Error(`the measured runs are not valid:\n  ${problems.join('\n  ')}`)
    if (profiles !== null) progress(`CPU profiles go to ${profiles}/{relaykey,bare}/ as the processes exit`)
  })
}

function progress (message: string): void {
  console.error(`[bench] ${message}`)
}

let settings: BenchSettings
try {
  settings = loadSettings()
} catch (err) {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`)
  process.exit(2)
}
await scenario(settings)
