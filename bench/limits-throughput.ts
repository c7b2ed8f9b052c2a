// Scenario: the governed path with limits on, in distributed mode, next to a bare pass-through.
// Every governed request is admitted against the key's rate limit and budget kept in Redis (by
// the Lua admission scripts, called per request or, from a worker's leases, far less often); the
// limits are set so high that nothing is refused, so this prices the check, not the refusals.
// Run: npm run bench:limits [-- --help]
//
//   autocannon (this process) ──▶ bare-proxy (cluster) ──┐
//                              └─▶ RelayKey  (cluster) ──┴─▶ upstream-server (own process)
//                                     │
//                                     ├─ Redis 127.0.0.1:6379 (own key prefix, deleted at the end)
//                                     └─ PostgreSQL 127.0.0.1:5432 (fresh database, dropped at the end)
//
// Targets: bare; redis-hot-key (every request with one key: one set of Redis counters);
// redis-10k-keys (X-RelayKey rotates over 10,000 keys: 10,000 sets of counters, 10,000 cached
// key contexts); redis-zipf-10k (the same 10,000 keys, each request's drawn from a Zipf
// distribution, s = 1.1: a few hot keys and a long tail, as real callers are spread). All four
// build every request through the same setupRequest, so the driver does the same work for
// each. The measured runs must be key-cache hits: the cache TTL is set above the benchmark's
// length and the warm-up of whichever 10,000-key target comes first touches every key; a miss
// in a measured run, or governed responses whose budget units Redis did not count, fail the
// run. Besides the usual table it prints what the stores did per run: script calls per
// response and Lua time (INFO commandstats), Redis CPU (INFO cpu) and the CPU of this run's
// PostgreSQL backends (/proc).
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
import { zipfSequence } from './lib/zipf-sequence.js'

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
/**
 * redis-zipf-10k's keys: 2^20 draws, more than a 10 s run at this machine's rates sends (so a
 * run does not replay its own pattern), and enough that nearly every tail key comes up
 */
const ZIPF = { exponent: 1.1, length: 2 ** 20, seed: 1 }
/** the targets over the 10,000 keys; the first of them to warm up touches every key */
const SPREAD_TARGETS = new Set(['redis-10k-keys', 'redis-zipf-10k'])
/**
 * The every-key touch runs on this many connections whatever --connections says: node:cluster
 * hands each new connection to the next worker, and one connection would load one worker's cache.
 */
const TOUCH_CONNECTIONS = 50
/** pause before every measured run: the previous run's hot leases go back, the machine settles */
const PAUSE_MS = 1_000
/** a lease return a worker has counted reaches Redis within this long */
const RETURN_LANDS_MS = 100

interface Extra {
  target: string
  round: number
  /** null for bare, which has no key cache */
  misses: number | null
  /** share of this run's limit decisions RelayKey took from its workers' leases; null for bare */
  localShare: number | null
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
      env: { ...stores.env, RELAYKEY_KEY_CACHE_TTL_MS: String(KEY_CACHE_TTL_MS), RELAYKEY_LEASES: settings.leases ? 'on' : 'off' },
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
    const zipfKeys = zipfSequence(keys, ZIPF)
    const targets: LoadTarget[] = [
      // bare ignores the key; it rotates anyway so the driver builds requests exactly as for 10k keys
      { name: 'bare', url: bare.url + PATH, headers, pid: bare.service.pid, setupRequest: new HeaderRotation('x-relaykey', keys).setupRequest },
      { name: 'redis-hot-key', url: relaykey.proxyUrl + PATH, headers, pid: relaykey.service.pid, setupRequest: new HeaderRotation('x-relaykey', [partner.key]).setupRequest },
      { name: 'redis-10k-keys', url: relaykey.proxyUrl + PATH, headers, pid: relaykey.service.pid, setupRequest: new HeaderRotation('x-relaykey', keys).setupRequest },
      { name: 'redis-zipf-10k', url: relaykey.proxyUrl + PATH, headers, pid: relaykey.service.pid, setupRequest: new HeaderRotation('x-relaykey', zipfKeys).setupRequest },
    ]
    const [bareTarget, hotKey, uniform, zipf] = targets as [LoadTarget, LoadTarget, LoadTarget, LoadTarget]
    const unknown = (settings.targets ?? []).filter((name) => !targets.some((t) => t.name === name))
    if (unknown.length > 0) throw new Error(`--targets: no target named ${unknown.join(', ')} (there are ${targets.map((t) => t.name).join(', ')})`)
    const chosen = targets.filter((t) => t.name === 'bare' || settings.targets === null || settings.targets.includes(t.name))
    const governedHeaders = ['x-relaykey-request-id', 'ratelimit', 'ratelimit-policy']
    await checkTarget(bareTarget, { status: 200, body: UPSTREAM_BODY })
    await checkTarget(hotKey, { status: 200, body: UPSTREAM_BODY, headers: governedHeaders })
    await checkTarget({ ...uniform, headers: { ...headers, 'x-relaykey': keys[KEY_COUNT - 1]! } }, { status: 200, body: UPSTREAM_BODY, headers: governedHeaders })
    await checkTarget({ ...zipf, headers: { ...headers, 'x-relaykey': keys[0]! } }, { status: 200, body: UPSTREAM_BODY, headers: governedHeaders })

    const measured: LoadSettings = { connections: settings.connections, pipelining: PIPELINING, durationSeconds: settings.durationSeconds }
    const warmup: LoadSettings = { ...measured, durationSeconds: settings.warmupSeconds }
    const runs: MeasuredRun[] = []
    const extras: Extra[] = []
    const problems: string[] = []
    const warmed = new Set<string>()
    let everyKeyTouched = false
    for (let round = 1; round <= settings.rounds; round++) {
      for (const target of roundOrder(chosen, round)) {
        if (!warmed.has(target.name)) {
          // a Zipf draw leaves tail keys out, so the touch always goes through the uniform rotation
          if (SPREAD_TARGETS.has(target.name) && !everyKeyTouched) {
            await touchEveryKey(uniform, warmup, settings.workers, stores, problems)
            everyKeyTouched = true
          }
          await warmUp(target, warmup)
          warmed.add(target.name)
        }
        await sleep(PAUSE_MS)
        progress(`round ${round}  ${target.name} (${measured.durationSeconds} s)`)
        const governed = target.name !== 'bare'
        const countsBefore = governed ? await relayKeyCounts(relaykey) : null
        const backends = await stores.databaseBackends()
        const postgresBefore = pidsCpuMicros(backends)
        const budgetBefore = governed ? await budgetSnapshot(stores, relaykey) : null
        const redisBefore = await sampleRedis(stores.redis)
        const run = await measuredRun(round, target, measured, upstream.service.pid)
        const redis = redisUsage(redisBefore, await sampleRedis(stores.redis))
        const budgetAfter = budgetBefore === null ? null : await budgetSnapshot(stores, relaykey)
        const postgresAfter = pidsCpuMicros(backends)
        const postgresMicros = postgresBefore === null || postgresAfter === null ? null : postgresAfter - postgresBefore
        const countsAfter = countsBefore === null ? null : await relayKeyCounts(relaykey)
        const misses = countsBefore === null ? null : countsAfter!.misses - countsBefore.misses
        const local = countsBefore === null ? 0 : countsAfter!.local - countsBefore.local
        const decided = countsBefore === null ? 0 : local + countsAfter!.store - countsBefore.store
        const localShare = countsBefore === null || decided === 0 ? null : local / decided
        const responses = run.result.responses
        runs.push(run)
        extras.push({ target: target.name, round, misses, localShare, redis, postgresMicros, responses })
        problems.push(...problemsOf(run.result))
        if (misses !== null && misses > 0) problems.push(`${target.name}: ${misses} key-cache misses in a run meant to be all hits`)
        // Every forwarded request's budget unit is counted in Redis, by an admission script or
        // as part of a worker's lease, whose units count as used from the moment Redis grants
        // them: the counters' growth, less the growth of what the workers hold unspent, is what
        // the run spent. It must be at least the responses, or requests went out without budget
        // accounting, and at most one more per connection (requests the driver cut off at the end).
        if (budgetBefore !== null) {
          const spent = budgetAfter!.counted - budgetBefore.counted - (budgetAfter!.held - budgetBefore.held)
          if (spent < responses || spent > responses + settings.connections) {
            problems.push(`${target.name}: the budget counters in Redis grew by ${budgetAfter!.counted - budgetBefore.counted} units and the workers' ` +
              `leases by ${budgetAfter!.held - budgetBefore.held}: ${spent} units spent for ${responses} responses (expected one each, at most ${settings.connections} more)`)
          }
        }
      }
    }

    printReport({
      title: 'limits-throughput: RelayKey with Redis limits and budgets (distributed mode) vs bare pass-through',
      settings: `leases ${settings.leases ? 'on' : 'off (RELAYKEY_LEASES=off)'}, workers ${settings.workers}, connections ${settings.connections}, pipelining ${PIPELINING}, ` +
        `${settings.durationSeconds} s per run after a ${settings.warmupSeconds} s warm-up per target ` +
        `(before the first 10,000-key target's: one pass per worker over every key, twice, on ${TOUCH_CONNECTIONS} connections), ` +
        `${PAUSE_MS} ms pause before each run, ${settings.rounds} round(s), ` +
        `redis-zipf-10k: ${describeZipf(zipfKeys, keys)}, ` +
        `GET ${PATH} → ${UPSTREAM_BODY.length}-byte JSON, policy ${JSON.stringify(LIMITS)}` +
        (pinning === null ? '' : `, pinned: driver + upstream on CPU ${pinning.driver}, proxies on CPU ${pinning.proxy} (Redis, PostgreSQL unpinned)`),
      loadAtStart,
      targets: chosen.map((t) => t.name),
      runs,
      comparisons: chosen.filter((t) => t.name !== 'bare').map((t) => ({ subject: t.name, baseline: 'bare', target: RATIO_TARGET })),
    })
    printRedisTable(extras)
    if (problems.length > 0) throw new Error(`the measured runs are not valid:\n  ${problems.join('\n  ')}`)
    if (profiles !== null) progress(`CPU profiles go to ${profiles}/{relaykey,bare}/ as the processes exit`)
  })
}

/**
 * Before the first 10,000-key target warms up: 2 × workers × KEY_COUNT requests rotating over
 * every key, so every worker has loaded (cache miss, PostgreSQL) and admitted (Redis) every key;
 * the Redis budget counters then show that every key went through the admission.
 */
async function touchEveryKey (uniform: LoadTarget, warmup: LoadSettings, workers: number, stores: DistributedStores, problems: string[]): Promise<void> {
  const amount = 2 * workers * KEY_COUNT
  progress(`warm-up  every key (${amount} requests through ${uniform.name}: every key, twice per worker)`)
  const touch = problemsOf(await runLoad(uniform, { ...warmup, connections: TOUCH_CONNECTIONS, amount }))
  if (touch.length > 0) throw new Error(`during warm-up: ${touch.join('; ')}`)
  // the hot key and the 10,000 keys: one budget counter each
  const counters = await stores.countKeys('*:budget:*')
  progress(`Redis holds ${counters} budget counters under ${stores.prefix}:`)
  if (counters < KEY_COUNT) problems.push(`${uniform.name}: only ${counters} of ${KEY_COUNT} keys have a budget counter after the warm-up`)
}

/** the discarded, timed warm-up */
async function warmUp (target: LoadTarget, warmup: LoadSettings): Promise<void> {
  if (warmup.durationSeconds === 0) return
  progress(`warm-up  ${target.name} (${warmup.durationSeconds} s)`)
  const warm = problemsOf(await runLoad(target, warmup))
  if (warm.length > 0) throw new Error(`during warm-up: ${warm.join('; ')}`)
}

/**
 * Budget units counted in Redis (spent, or leased to a worker) and held unspent in the workers'
 * leases, read so that no lease moved in between: the lease metrics are read before and after
 * the counters, and the pair is read again until they agree. A worker counts a return when it
 * sends it, so the counters are read RETURN_LANDS_MS after the first metrics: a return sent
 * just before them has reached Redis by then.
 */
async function budgetSnapshot (stores: DistributedStores, relaykey: RelayKey): Promise<{ counted: number; held: number }> {
  for (let attempt = 1; ; attempt++) {
    const before = await leaseLedger(relaykey)
    await sleep(RETURN_LANDS_MS)
    const counters = await stores.readKeys('*:budget:*')
    const after = await leaseLedger(relaykey)
    if (before.held === after.held && before.moves === after.moves) {
      let counted = 0
      for (const value of counters.values()) counted += value
      return { counted, held: after.held }
    }
    if (attempt === 50) throw new Error('the workers\' leases kept moving while the budget counters were read')
  }
}

/** budget units the workers hold in leases, and how many grants and returns they have had */
async function leaseLedger (relaykey: RelayKey): Promise<{ held: number; moves: number }> {
  const text = await relaykey.metrics()
  let held = 0
  let moves = 0
  for (const line of text.split('\n')) {
    const leased = /^relaykey_leased_units\{kind="(?:key|customer)_budget"\} (\d+)/.exec(line)
    if (leased !== null) held += Number(leased[1])
    const move = /^relaykey_lease_(?:grants|returns)_total\{[^}]*\} (\d+)/.exec(line)
    if (move !== null) moves += Number(move[1])
  }
  return { held, moves }
}

/** what the Zipf table holds, for the settings line */
function describeZipf (drawn: readonly string[], keys: readonly string[]): string {
  let hottest = 0
  for (const key of drawn) if (key === keys[0]) hottest++
  return `rank r drawn with probability ∝ r^-${ZIPF.exponent} (a cyclic table of ${drawn.length} draws, seed ${ZIPF.seed}: ` +
    `rank 1 in ${(100 * hottest / drawn.length).toFixed(1)} % of requests, ${new Set(drawn).size} of ${keys.length} keys present)`
}

/** key-cache misses, and limit decisions taken from leases (local) or by Redis (store), so far */
async function relayKeyCounts (relaykey: RelayKey): Promise<{ misses: number; local: number; store: number }> {
  const text = await relaykey.metrics()
  const read = (pattern: RegExp, name: string): number => {
    const line = pattern.exec(text)
    if (line === null) throw new Error(`RelayKey /metrics has no ${name}`)
    return Number(line[1])
  }
  return {
    misses: read(/^relaykey_key_cache_misses_total (\d+)/m, 'relaykey_key_cache_misses_total'),
    local: read(/^relaykey_admissions_total\{path="local"\} (\d+)/m, 'relaykey_admissions_total'),
    store: read(/^relaykey_admissions_total\{path="store"\} (\d+)/m, 'relaykey_admissions_total'),
  }
}

function printRedisTable (extras: Extra[]): void {
  console.log('The stores during each measured run (Redis is shared: its counters include other clients; PostgreSQL: the backends of this run\'s database):\n')
  console.log('| target | round | admitted from leases | responses / script call | Lua µs / call | Redis CPU (µs/req) | store calls / request | PostgreSQL CPU (µs/req) | key-cache misses |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const e of extras) {
    const per = e.responses === 0 ? 0 : 1 / e.responses
    // during bare, the few calls are other clients' and say nothing about ours
    const governed = e.target !== 'bare'
    const ours = governed && e.redis.microsPerCall !== null
    // every EVALSHA and EVAL, whatever the script (decision, lease top-up, return): how often
    // a request still needed the store
    const storeCalls = governed ? (e.redis.scriptCalls * per).toFixed(4) : 'n/a'
    console.log(`| ${e.target} | ${e.round} | ${e.localShare === null ? 'n/a' : `${(100 * e.localShare).toFixed(1)} %`} | ${ours ? (e.responses / e.redis.scriptCalls).toFixed(1) : 'n/a'} | ` +
      `${ours ? e.redis.microsPerCall!.toFixed(1) : 'n/a'} | ${(e.redis.cpuMicros * per).toFixed(1)} | ${storeCalls} | ` +
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
