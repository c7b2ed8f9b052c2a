// Scenario: the governed path with limits on, in distributed mode, next to a bare pass-through.
// Every governed request runs the Redis Lua admission (one EVALSHA deciding the key's rate limit
// and budget); the limits are set so high that nothing is refused, so this prices the check,
// not the refusals. Run: npm run bench:limits [-- --help]
//
//   autocannon (this process) ──▶ bare-proxy (cluster) ──┐
//                              └─▶ RelayKey  (cluster) ──┴─▶ upstream-server (own process)
//                                     │
//                                     ├─ Redis 127.0.0.1:6379 (own key prefix, deleted at the end)
//                                     └─ PostgreSQL 127.0.0.1:5432 (fresh database, dropped at the end)
//
// Targets: bare; redis-hot-key (every request with one key: one set of Redis counters);
// redis-10k-keys (X-RelayKey rotates over 10,000 keys: 10,000 sets of counters, 10,000 cached
// key contexts). All three build every request through the same setupRequest, so the driver
// does the same work for each. The measured runs must be key-cache hits: the cache TTL is set
// above the benchmark's length and the 10k warm-up first touches every key; a miss in a
// measured run, or a governed response that did not reserve its budget unit in Redis, fails
// the run. Besides the usual table it prints what the stores did per run: responses per script
// call (decisions are batched per event-loop turn) and Lua time (INFO commandstats), Redis CPU
// (INFO cpu) and the CPU of this run's PostgreSQL backends (/proc).
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { checkTarget } from './lib/check-target.js'
import { pinDriver } from './lib/cpu-pinning.js'
import { openDistributedStores, type DistributedStores } from './lib/distributed-stores.js'
import { createGovernedPartner, createVirtualKeys } from './lib/governed-partner.js'
import { HeaderRotation } from './lib/header-rotation.js'
import { problemsOf, runLoad, type LoadSettings, type LoadTarget } from './lib/load.js'
import { measuredRun, type MeasuredRun } from './lib/measured-run.js'
import { pidsCpuMicros } from './lib/process-cpu.js'
import { redisUsage, sampleRedis, type RedisUsage } from './lib/redis-usage.js'
import { printReport } from './lib/report.js'
import { roundOrder } from './lib/round-order.js'
import { runScenario } from './lib/service-group.js'
import { loadSettings, type BenchSettings } from './lib/settings.js'
import { startBareProxy } from './lib/start-bare-proxy.js'
import { startRelayKey, type RelayKey } from './lib/start-relaykey.js'
import { startUpstream } from './lib/start-upstream.js'
import { UPSTREAM_BODY } from './lib/upstream-body.js'

const CONNECTIONS = 50
const PIPELINING = 1
const RATIO_TARGET = 0.8
const PATH = '/proxy/bench/resources/items/42?view=full'
const KEY_COUNT = 10_000
const KEY_CREATE_CONCURRENCY = 32
/** far above any request rate this machine reaches: every request is checked, none refused */
const LIMITS = {
  rate_limit: { requests: 100_000, per_seconds: 1 },
  budget: { monthly: 1e12 },
}
/** the cache safety-net TTL (default 30 s) must outlast the benchmark, or 10,000 keys expire mid-run */
const KEY_CACHE_TTL_MS = 3_600_000

interface Extra {
  target: string
  round: number
  /** null for bare, which has no key cache */
  misses: number | null
  redis: RedisUsage
  /** CPU µs the backends of this run's database used during the run (audit writes, mostly) */
  postgresMicros: number | null
  responses: number
}

async function scenario (settings: BenchSettings): Promise<void> {
  await runScenario(async (group) => {
    const loadAtStart = loadavg()
    const pinning = settings.pin ? pinDriver() : null
    // first, so their clean-up runs last: after RelayKey has stopped using them
    const stores = await openDistributedStores(group)
    const upstream = await startUpstream(group, { cpus: pinning?.driver })
    const profiles = settings.cpuProfDir
    const bare = await startBareProxy(group, {
      upstreamUrl: upstream.url,
      workers: settings.workers,
      cpuProfDir: profiles === null ? null : join(profiles, 'bare'),
      cpus: pinning?.proxy,
    })
    const relaykey = await startRelayKey(group, {
      workers: settings.workers,
      cpuProfDir: profiles === null ? null : join(profiles, 'relaykey'),
      cpus: pinning?.proxy,
      env: { ...stores.env, RELAYKEY_KEY_CACHE_TTL_MS: String(KEY_CACHE_TTL_MS) },
    })
    const partner = await createGovernedPartner(relaykey, {
      slug: 'bench',
      upstreamUrl: upstream.url,
      allow: [{ method: 'GET', path: '/resources/items/*' }],
      policy: LIMITS,
    })
    progress(`creating ${KEY_COUNT} virtual keys, ${KEY_CREATE_CONCURRENCY} at a time`)
    const started = performance.now()
    const keys = await createVirtualKeys(relaykey, { policyId: partner.policyId, count: KEY_COUNT, concurrency: KEY_CREATE_CONCURRENCY })
    progress(`created ${KEY_COUNT} keys in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    // each creation published an invalidation; let the last ones land before the cache fills
    await sleep(1_000)

    const headers = { 'x-relaykey': partner.key, accept: 'application/json' }
    const targets: LoadTarget[] = [
      // bare ignores the key; it rotates anyway so the driver builds requests exactly as for 10k keys
      { name: 'bare', url: bare.url + PATH, headers, pid: bare.service.pid, setupRequest: new HeaderRotation('x-relaykey', keys).setupRequest },
      { name: 'redis-hot-key', url: relaykey.proxyUrl + PATH, headers, pid: relaykey.service.pid, setupRequest: new HeaderRotation('x-relaykey', [partner.key]).setupRequest },
      { name: 'redis-10k-keys', url: relaykey.proxyUrl + PATH, headers, pid: relaykey.service.pid, setupRequest: new HeaderRotation('x-relaykey', keys).setupRequest },
    ]
    const governedHeaders = ['x-relaykey-request-id', 'ratelimit', 'ratelimit-policy']
    await checkTarget(targets[0]!, { status: 200, body: UPSTREAM_BODY })
    await checkTarget(targets[1]!, { status: 200, body: UPSTREAM_BODY, headers: governedHeaders })
    await checkTarget({ ...targets[2]!, headers: { ...headers, 'x-relaykey': keys[KEY_COUNT - 1]! } }, { status: 200, body: UPSTREAM_BODY, headers: governedHeaders })

    const measured: LoadSettings = { connections: CONNECTIONS, pipelining: PIPELINING, durationSeconds: settings.durationSeconds }
    const warmup: LoadSettings = { ...measured, durationSeconds: settings.warmupSeconds }
    const runs: MeasuredRun[] = []
    const extras: Extra[] = []
    const problems: string[] = []
    const warmed = new Set<string>()
    for (let round = 1; round <= settings.rounds; round++) {
      for (const target of roundOrder(targets, round)) {
        if (!warmed.has(target.name)) await warmUp(target, warmup, target.name === 'redis-10k-keys' ? settings.workers : 0, stores, problems)
        warmed.add(target.name)
        progress(`round ${round}  ${target.name} (${measured.durationSeconds} s)`)
        const governed = target.name !== 'bare'
        const missesBefore = governed ? await cacheMisses(relaykey) : null
        const backends = await stores.databaseBackends()
        const postgresBefore = pidsCpuMicros(backends)
        const unitsBefore = governed ? await budgetUnits(stores) : 0
        const redisBefore = await sampleRedis(stores.redis)
        const run = await measuredRun(round, target, measured, upstream.service.pid)
        const redis = redisUsage(redisBefore, await sampleRedis(stores.redis))
        const reserved = governed ? await budgetUnits(stores) - unitsBefore : 0
        const postgresAfter = pidsCpuMicros(backends)
        const postgresMicros = postgresBefore === null || postgresAfter === null ? null : postgresAfter - postgresBefore
        const misses = missesBefore === null ? null : await cacheMisses(relaykey) - missesBefore
        runs.push(run)
        extras.push({ target: target.name, round, misses, redis, postgresMicros, responses: run.result.responses })
        problems.push(...problemsOf(run.result))
        if (misses !== null && misses > 0) problems.push(`${target.name}: ${misses} key-cache misses in a run meant to be all hits`)
        // every forwarded request reserved its 1 budget unit in Redis, through the Lua admission;
        // requests the driver cut off at the end of the run may have reserved one without a
        // counted response (at most one per connection)
        if (governed && (reserved < run.result.responses || reserved > run.result.responses + CONNECTIONS)) {
          problems.push(`${target.name}: ${reserved} budget units reserved in Redis for ${run.result.responses} responses (expected one each)`)
        }
      }
    }

    printReport({
      title: 'limits-throughput: RelayKey with Redis limits and budgets (distributed mode) vs bare pass-through',
      settings: `workers ${settings.workers}, connections ${CONNECTIONS}, pipelining ${PIPELINING}, ` +
        `${settings.durationSeconds} s per run after a ${settings.warmupSeconds} s warm-up per target ` +
        `(redis-10k-keys: first one pass per worker over every key, twice), ${settings.rounds} round(s), ` +
        `GET ${PATH} → ${UPSTREAM_BODY.length}-byte JSON, policy ${JSON.stringify(LIMITS)}` +
        (pinning === null ? '' : `, pinned: driver + upstream on CPU ${pinning.driver}, proxies on CPU ${pinning.proxy} (Redis, PostgreSQL unpinned)`),
      loadAtStart,
      targets: targets.map((t) => t.name),
      runs,
      comparisons: [
        { subject: 'redis-hot-key', baseline: 'bare', target: RATIO_TARGET },
        { subject: 'redis-10k-keys', baseline: 'bare', target: RATIO_TARGET },
      ],
    })
    printRedisTable(extras)
    if (problems.length > 0) throw new Error(`the measured runs are not valid:\n  ${problems.join('\n  ')}`)
    if (profiles !== null) progress(`CPU profiles go to ${profiles}/{relaykey,bare}/ as the processes exit`)
  })
}

/**
 * The discarded warm-up. For the 10k target it first sends 2 × workers × KEY_COUNT requests, so
 * every worker has loaded (cache miss, PostgreSQL) and admitted (Redis) every key before the
 * timed warm-up; the Redis budget counters then show that every key went through the script.
 */
async function warmUp (target: LoadTarget, warmup: LoadSettings, keyPasses: number, stores: DistributedStores, problems: string[]): Promise<void> {
  if (keyPasses > 0) {
    const amount = 2 * keyPasses * KEY_COUNT
    progress(`warm-up  ${target.name} (${amount} requests: every key, twice per worker)`)
    const touch = problemsOf(await runLoad(target, { ...warmup, amount }))
    if (touch.length > 0) throw new Error(`during warm-up: ${touch.join('; ')}`)
    // the hot key and the 10,000 keys: one budget counter each
    const counters = await stores.countKeys('*:budget:*')
    progress(`Redis holds ${counters} budget counters under ${stores.prefix}:`)
    if (counters < KEY_COUNT) problems.push(`${target.name}: only ${counters} of ${KEY_COUNT} keys have a budget counter after the warm-up`)
  }
  if (warmup.durationSeconds === 0) return
  progress(`warm-up  ${target.name} (${warmup.durationSeconds} s)`)
  const warm = problemsOf(await runLoad(target, warmup))
  if (warm.length > 0) throw new Error(`during warm-up: ${warm.join('; ')}`)
}

/** budget units reserved so far by every key of the run (each request costs 1) */
async function budgetUnits (stores: DistributedStores): Promise<number> {
  return await stores.sumKeys('*:budget:*')
}

async function cacheMisses (relaykey: RelayKey): Promise<number> {
  const text = await relaykey.metrics()
  const line = /^relaykey_key_cache_misses_total (\d+)/m.exec(text)
  if (line === null) throw new Error('RelayKey /metrics has no relaykey_key_cache_misses_total')
  return Number(line[1])
}

function printRedisTable (extras: Extra[]): void {
  console.log('The stores during each measured run (Redis is shared: its counters include other clients; PostgreSQL: the backends of this run\'s database):\n')
  console.log('| target | round | responses / script call | Lua µs / call | Redis CPU (µs/req) | PostgreSQL CPU (µs/req) | key-cache misses |')
  console.log('|---|---:|---:|---:|---:|---:|---:|')
  for (const e of extras) {
    const per = e.responses === 0 ? 0 : 1 / e.responses
    // RelayKey batches the decisions of one event-loop turn into one EVALSHA; during bare, the
    // few calls are other clients' and say nothing about ours
    const ours = e.target !== 'bare' && e.redis.microsPerCall !== null
    console.log(`| ${e.target} | ${e.round} | ${ours ? (e.responses / e.redis.scriptCalls).toFixed(1) : 'n/a'} | ` +
      `${ours ? e.redis.microsPerCall!.toFixed(1) : 'n/a'} | ${(e.redis.cpuMicros * per).toFixed(1)} | ` +
      `${e.postgresMicros === null ? 'n/a' : (e.postgresMicros * per).toFixed(1)} | ` +
      `${e.misses === null ? 'n/a' : e.misses} |`)
  }
  console.log('')
}

function progress (message: string): void {
  console.error(`[bench:limits] ${message}`)
}

let settings: BenchSettings
try {
  settings = loadSettings()
} catch (err) {
  console.error(`bench:limits: ${err instanceof Error ? err.message : String(err)}`)
  process.exit(2)
}
await scenario(settings)
