// Sustained client load for the admission-by-lease tests (docs/limits-and-budgets.md): many client
// loops, each a sequence of requests on its own keep-alive connection, spread over RelayKey nodes,
// every answer recorded with the moment its request was sent — so a test can ask what requests
// started after some moment got. Also: what the partner received, kill -9 of a whole node, usage
// polling, and the scenarios both lease test files run (embedded and distributed mode).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, request } from 'undici'
import type { MockPartner } from './mock-partner.js'
import { setUpGovernedPartner, type GovernedSetup, type RelayKeyProcess } from './relaykey-process.js'
import { callProxy } from './proxy-outcomes.js'
import { childPids } from './process-tree.js'

/** one request of a load: where it went, when it was sent and answered, what came back */
export interface Shot {
  /** index into the nodes the load was started with */
  node: number
  loop: number
  startedAt: number
  endedAt: number
  /** 0: no HTTP answer (connection refused or reset, e.g. a killed node) */
  status: number
  /** RelayKey's error code, or the network error's code when status is 0 */
  code: string | undefined
}

export interface LoadOptions {
  nodes: RelayKeyProcess[]
  key: string
  /** the proxy path after /proxy/, e.g. `acme/x` */
  path: string
  /** client loops, spread round-robin over the nodes; each has a connection of its own */
  loops: number
  /** no loop sends a request after this long */
  maxMs: number
  /** no more requests than this over all loops (a second bound beside time) */
  maxRequests?: number
  /** checked before every request: true ends every loop */
  until?: () => boolean
  /** a loop ends once its last `count` answers were all 429 with this code */
  untilRefusedInARow?: { count: number; code: string }
}

export interface Load {
  /** every answer so far, in the order they came */
  readonly shots: Shot[]
  /** resolves with every answer once every loop has ended */
  readonly done: Promise<Shot[]>
  /** ends the loops of these nodes (all by default) after their current request, and waits for them */
  stop (nodeIndexes?: number[]): Promise<void>
}

/**
 * Starts the loops and returns at once. Keep-alive connections matter: the cluster primary hands
 * a connection to one worker for its life, so a node's loops split about evenly over its workers, and
 * no request pays for a TCP handshake — fast enough that every worker sees the several requests
 * per ~100 ms that make it ask for leases.
 */
export function startLoad (options: LoadOptions): Load {
  const started = Date.now()
  const maxRequests = options.maxRequests ?? 200_000
  const shots: Shot[] = []
  const stopped = options.nodes.map(() => false)
  const perNode = options.nodes.map((_, n) => Math.ceil((options.loops - n) / options.nodes.length))
  const agents = options.nodes.map((_, n) => new Agent({
    connections: Math.max(1, perNode[n]!),
    keepAliveTimeout: 30_000,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
    connectTimeout: 2_000,
  }))
  let sent = 0

  const loop = async (index: number): Promise<void> => {
    const node = index % options.nodes.length
    const rk = options.nodes[node]!
    let refusedInARow = 0
    while (!stopped[node] && Date.now() - started < options.maxMs && sent < maxRequests && options.until?.() !== true) {
      if (options.untilRefusedInARow !== undefined && refusedInARow >= options.untilRefusedInARow.count) return
      sent++
      const startedAt = Date.now()
      let status = 0
      let code: string | undefined
      try {
        const res = await request(`${rk.proxyUrl}/proxy/${options.path}`, { headers: { 'x-relaykey': options.key }, dispatcher: agents[node] })
        status = res.statusCode
        const text = await res.body.text()
        if (status !== 200) {
          try {
            code = JSON.parse(text).error?.code
          } catch {}
        }
      } catch (err) {
        code = (err as { code?: string }).code ?? (err as Error).name
      }
      shots.push({ node, loop: index, startedAt, endedAt: Date.now(), status, code })
      refusedInARow = status === 429 && code === options.untilRefusedInARow?.code ? refusedInARow + 1 : 0
      // a node that is gone refuses connections at once: do not spin on it
      if (status === 0) await sleep(20)
    }
  }

  const loops = Array.from({ length: options.loops }, (_, i) => loop(i))
  const done = Promise.all(loops).then(async () => {
    // destroy, not close: a killed node's sockets would never say goodbye
    await Promise.all(agents.map(async (agent) => { await agent.destroy() }))
    return shots
  })
  return {
    shots,
    done,
    async stop (nodeIndexes) {
      const which = nodeIndexes ?? options.nodes.map((_, n) => n)
      for (const n of which) stopped[n] = true
      await Promise.all(loops.filter((_, i) => which.includes(i % options.nodes.length)))
    },
  }
}

/** "node:status code" → how many, as JSON: the message an assertion about shots fails with */
export function tallyShots (shots: Shot[]): string {
  const out: Record<string, number> = {}
  for (const s of shots) {
    const k = `node${s.node}:${s.status} ${s.code ?? ''}`.trim()
    out[k] = (out[k] ?? 0) + 1
  }
  return JSON.stringify(out)
}

/**
 * How many requests the partner has received under `prefix` (a path of the partner's), counted
 * incrementally: the mock partner's list is shared by every test of a file and only grows.
 */
export function receivedUnder (partner: MockPartner, prefix: string): () => number {
  let scanned = 0
  let n = 0
  return () => {
    for (; scanned < partner.received.length; scanned++) if (partner.received[scanned]!.url.startsWith(prefix)) n++
    return n
  }
}

/** a partner slug of its own per test, so the partner's received list can be counted per test */
export function uniqueSlug (prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`
}

/**
 * Partner → credential → policy (with `policy` applied) → binding → key on `rk`; the partner's
 * base URL ends in `/<slug>`, so what this key forwards is what `received()` counts.
 */
export async function setUpLeasedKey (rk: RelayKeyProcess, partner: MockPartner, prefix: string, policy: Record<string, unknown>): Promise<GovernedSetup & { slug: string; received: () => number }> {
  const slug = uniqueSlug(prefix)
  const setup = await setUpGovernedPartner(rk, { slug, baseUrl: `${partner.url}/${slug}` })
  const patched = await rk.admin('PATCH', `/admin/policies/${setup.policyId}`, policy)
  assert.equal(patched.status, 200, JSON.stringify(patched.body))
  // policy changes reach every worker of every node within a second; the key is not cached yet
  // anywhere, but the partner and binding lookups may be
  await sleep(300)
  return { ...setup, slug, received: receivedUnder(partner, `/${slug}/`) }
}

/**
 * `ms` of load over `nodes` with a key of its own (large budget): a fresh node's first requests
 * are slow (JIT, connection pools), which would make the first test's load thin.
 */
export async function warmUp (nodes: RelayKeyProcess[], partner: MockPartner, ms: number): Promise<void> {
  const setup = await setUpLeasedKey(nodes[0]!, partner, 'warm', { budget: { monthly: 1_000_000_000 } })
  const shots = await startLoad({ nodes, key: setup.key, path: `${setup.slug}/x`, loops: 4 * nodes.length, maxMs: ms }).done
  assert.deepEqual(shots.filter((s) => s.status !== 200).slice(0, 5), [], `warm-up: ${tallyShots(shots)}`)
}

export interface BudgetView { limit: number; used: number; remaining: number }
export interface UsageView { forwarded: number; cost: number; budget?: BudgetView }

/** GET /admin/usage?key_id= until `accept` says yes or `maxMs` passes; the last answer either way */
export async function pollUsage (rk: RelayKeyProcess, keyId: string, accept: (usage: UsageView) => boolean, maxMs = 5_000): Promise<UsageView> {
  const deadline = Date.now() + maxMs
  for (;;) {
    const res = await rk.admin<UsageView>('GET', `/admin/usage?key_id=${keyId}`)
    assert.equal(res.status, 200, JSON.stringify(res.body))
    if (accept(res.body) || Date.now() > deadline) return res.body
    await sleep(100)
  }
}

/** the lease metrics' lines from the admin port's /metrics (empty before leases exist), for diagnostics */
export async function leaseMetrics (rk: RelayKeyProcess): Promise<string> {
  try {
    const res = await request(`${rk.adminUrl}/metrics`, { headers: { authorization: `Bearer ${rk.adminToken}` } })
    const text = await res.body.text()
    return text.split('\n').filter((l) => /^relaykey_(lease_\w+|admissions_total|leased_units)\{/.test(l)).join('\n')
  } catch (err) {
    return `metrics unavailable: ${(err as Error).message}`
  }
}

function alive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

/**
 * kill -9 of a whole node: the primary and every worker die with no handler run, no lease
 * returned, nothing flushed. Everything is stopped (SIGSTOP) first, so the primary cannot fork a
 * replacement for a worker it sees die, and no worker sees its primary go (and shuts down
 * gracefully) in between. Resolves once none of the processes runs any more.
 */
export async function killNode (rk: RelayKeyProcess): Promise<void> {
  const primary = rk.child.pid!
  const workers = childPids(primary)
  assert.ok(workers.length > 0, 'the node has workers to kill')
  const all = [primary, ...workers]
  for (const pid of all) process.kill(pid, 'SIGSTOP')
  for (const pid of workers) process.kill(pid, 'SIGKILL')
  await rk.stop('SIGKILL')
  const deadline = Date.now() + 5_000
  while (all.some(alive)) {
    assert.ok(Date.now() < deadline, `processes of the killed node still run: ${all.filter(alive).join(' ')}`)
    await sleep(20)
  }
}

/** resolves at the epoch-ms moment `at` (at once if it has passed) */
export async function sleepUntil (at: number): Promise<void> {
  const left = at - Date.now()
  if (left > 0) await sleep(left)
}

/** requests on fresh connections to every node, concurrently: reaches every worker with high odds */
export async function probeEveryNode (nodes: RelayKeyProcess[], key: string, path: string, perNode = 8): Promise<Array<{ node: number; status: number; code: string | undefined }>> {
  const out = await Promise.all(nodes.flatMap((rk, node) => Array.from({ length: perNode }, async () => {
    const o = await callProxy(rk, key, path)
    return { node, status: o.status, code: o.code }
  })))
  return out
}

// ---------------------------------------------------------------------------------------------
// Scenarios both files run, against one embedded node or two distributed nodes. Each asserts only
// what a user sees: statuses and codes, what the partner received, GET /admin/usage.

/** how long after an admin change answered every worker of every node must apply it */
export const CHANGE_GRACE_MS = 1_000

/**
 * A budget of `budget` under sustained load from `loops` client loops over every node: the loops
 * keep sending until the partner has received the whole budget (units leased to a worker that
 * stops using them go back to the store and reach the others), bounded by 30 s (a few seconds on
 * an idle machine). Exactly `budget` requests reach the partner and get 200, every other answer is
 * 429 budget_exceeded, every worker refuses afterwards, and usage agrees.
 */
export async function budgetSpentExactlyUnderSustainedLoad (nodes: RelayKeyProcess[], partner: MockPartner, options: { budget: number; loops: number; diagnostic: (m: string) => void }): Promise<void> {
  const { budget } = options
  const setup = await setUpLeasedKey(nodes[0]!, partner, 'exact', { budget: { monthly: budget } })
  const load = startLoad({ nodes, key: setup.key, path: `${setup.slug}/x`, loops: options.loops, maxMs: 30_000, until: () => setup.received() >= budget })
  const shots = await load.done
  const seconds = (Math.max(...shots.map((s) => s.endedAt)) - Math.min(...shots.map((s) => s.startedAt))) / 1000
  options.diagnostic(`${shots.length} requests in ${seconds.toFixed(2)} s: ${tallyShots(shots)}`)
  for (const rk of nodes) options.diagnostic(`lease metrics of ${rk.proxyUrl}:\n${await leaseMetrics(rk)}`)

  await sleep(500) // idle leases go back within ~30 ms; nothing is in flight any more
  const summary = tallyShots(shots)
  assert.equal(setup.received(), budget, `the partner received exactly the budget: ${summary}`)
  assert.equal(shots.filter((s) => s.status === 200).length, budget, `clients got exactly the budget of 200s: ${summary}`)
  assert.deepEqual(shots.filter((s) => s.status !== 200 && !(s.status === 429 && s.code === 'budget_exceeded')), [], `every refusal is 429 budget_exceeded: ${summary}`)

  const probes = await probeEveryNode(nodes, setup.key, `${setup.slug}/x`)
  assert.deepEqual(probes.filter((p) => p.status !== 429 || p.code !== 'budget_exceeded'), [], 'every worker of every node refuses once the budget is spent')
  assert.equal(setup.received(), budget, 'nothing more reached the partner')

  // usage's forwarded and cost come from the audit trail, written in batches: wait for them
  const usage = await pollUsage(nodes[nodes.length - 1]!, setup.keyId, (u) => u.forwarded >= budget, 10_000)
  assert.deepEqual(usage.budget, { limit: budget, used: budget, remaining: 0 })
  assert.equal(usage.forwarded, budget)
  assert.equal(usage.cost, budget)
}

/** how long a key is under load before the admin change: long enough for every worker to hold leases */
const HOT_MS = 1_000

interface HotKey {
  setup: GovernedSetup & { slug: string; received: () => number }
  load: Load
}

/** a key with `policy`, under load from `loops` loops over every node for HOT_MS, every answer 200 so far */
async function hotKey (nodes: RelayKeyProcess[], partner: MockPartner, prefix: string, policy: Record<string, unknown>, loops: number): Promise<HotKey> {
  const setup = await setUpLeasedKey(nodes[0]!, partner, prefix, policy)
  // afterGrace() stops it; the bound only keeps a failed test from loading on
  const load = startLoad({ nodes, key: setup.key, path: `${setup.slug}/x`, loops, maxMs: 30_000 })
  await sleep(HOT_MS)
  try {
    const summary = tallyShots(load.shots)
    assert.deepEqual(load.shots.filter((s) => s.status !== 200), [], `the hot phase is all 200: ${summary}`)
    for (let n = 0; n < nodes.length; n++) assert.ok(load.shots.filter((s) => s.node === n).length >= 10, `node ${n} is under load: ${summary}`)
  } catch (err) {
    await load.stop()
    throw err
  }
  return { setup, load }
}

/**
 * After an admin change answered at `changedAt`, under the load: from `changedAt` + 1 s on, for
 * `windowMs`, what did requests get, and what reached the partner. Stops the load.
 */
async function afterGrace (hot: HotKey, nodes: RelayKeyProcess[], changedAt: number, windowMs: number): Promise<{ late: Shot[]; lateForwards: number; inFlightAtCut: number; cut: number }> {
  await sleepUntil(changedAt + CHANGE_GRACE_MS)
  // the partner's count at the cut; requests admitted before it may still arrive after it
  const cut = Date.now()
  const receivedAtCut = hot.setup.received()
  await sleep(windowMs)
  await hot.load.stop()
  await sleep(100)
  const shots = hot.load.shots
  const late = shots.filter((s) => s.startedAt > cut)
  for (let n = 0; n < nodes.length; n++) assert.ok(late.filter((s) => s.node === n).length >= 10, `node ${n} stayed under load after the grace: ${tallyShots(late)}`)
  return {
    late,
    cut,
    lateForwards: hot.setup.received() - receivedAtCut,
    inFlightAtCut: shots.filter((s) => s.status === 200 && s.startedAt <= cut && s.endedAt >= cut).length,
  }
}

/**
 * For diagnostics, per node, in ms after `since`: when `code` was first answered, and when the
 * last request that got 200 was sent.
 */
function firstRefusals (shots: Shot[], nodes: number, since: number, code: string): string {
  return Array.from({ length: nodes }, (_, n) => {
    const first = shots.find((s) => s.node === n && s.code === code && s.endedAt >= since)
    const last200 = shots.filter((s) => s.node === n && s.status === 200).reduce((latest, s) => Math.max(latest, s.startedAt), 0)
    return `node ${n}: first ${code} ${first === undefined ? 'never' : `${first.endedAt - since} ms`}, last 200 sent at ${last200 - since} ms`
  }).join('; ')
}

/**
 * Revocation while leases are out: a key with a large budget (so workers hold budget leases) is
 * revoked under load through the first node's admin port. No request started more than 1 s after
 * the revocation was answered gets anything but 401 key_revoked, on any node, and the partner gets
 * nothing more than what was already admitted then.
 */
export async function revocationUnderLoad (nodes: RelayKeyProcess[], partner: MockPartner, options: { loops: number; diagnostic: (m: string) => void }): Promise<void> {
  const hot = await hotKey(nodes, partner, 'revoke', { budget: { monthly: 1_000_000_000 } }, options.loops)
  try {
    const revoked = await nodes[0]!.admin('POST', `/admin/keys/${hot.setup.keyId}/revoke`)
    const revokedAt = Date.now()
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body))
    const { late, lateForwards, inFlightAtCut, cut } = await afterGrace(hot, nodes, revokedAt, 1_500)
    options.diagnostic(`after the revocation: ${firstRefusals(hot.load.shots, nodes.length, revokedAt, 'key_revoked')}; ${tallyShots(hot.load.shots)}`)

    const summary = tallyShots(late)
    assert.deepEqual(late.filter((s) => s.status !== 401 || s.code !== 'key_revoked').slice(0, 5), [],
      `every request started more than 1 s after the revocation answered 401 key_revoked (started after ${cut}): ${summary}`)
    assert.ok(lateForwards <= inFlightAtCut, `the partner got ${lateForwards} requests after the grace, only ${inFlightAtCut} were admitted before it`)
    const between = hot.load.shots.filter((s) => s.startedAt > revokedAt && s.startedAt <= cut)
    assert.deepEqual(between.filter((s) => s.status !== 200 && s.code !== 'key_revoked'), [], `during the grace: 200 or 401 key_revoked only: ${tallyShots(between)}`)

    // the revocation took back the leases: the budget counts exactly what was forwarded
    await sleep(300)
    const usage = await pollUsage(nodes[nodes.length - 1]!, hot.setup.keyId, (u) => u.budget?.used === hot.setup.received(), 3_000)
    assert.equal(usage.budget?.used, hot.setup.received(), 'budget used = what the partner received (no units left leased)')
  } finally {
    await hot.load.stop()
  }
}

/**
 * A budget lowered under load, below what is already used: within 1 s every request on every
 * node is 429 budget_exceeded and the partner gets nothing more than what was already admitted.
 */
export async function budgetLoweredUnderLoad (nodes: RelayKeyProcess[], partner: MockPartner, options: { loops: number; diagnostic: (m: string) => void }): Promise<void> {
  const hot = await hotKey(nodes, partner, 'lower', { budget: { monthly: 1_000_000_000 } }, options.loops)
  try {
    const receivedBefore = hot.setup.received()
    const before = await pollUsage(nodes[0]!, hot.setup.keyId, () => true)
    // used counts every admitted request, and units leased to workers on top: never less than
    // what the partner already got
    assert.ok(before.budget !== undefined && before.budget.used >= receivedBefore, `used ${before.budget?.used} >= received ${receivedBefore}`)
    options.diagnostic(`under load: budget used ${before.budget.used}, partner received ${receivedBefore}`)

    const patched = await nodes[0]!.admin('PATCH', `/admin/policies/${hot.setup.policyId}`, { budget: { monthly: 1 } })
    const changedAt = Date.now()
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    const { late, lateForwards, inFlightAtCut, cut } = await afterGrace(hot, nodes, changedAt, 1_500)
    options.diagnostic(`after the change: ${firstRefusals(hot.load.shots, nodes.length, changedAt, 'budget_exceeded')}`)

    assert.deepEqual(late.filter((s) => s.status !== 429 || s.code !== 'budget_exceeded').slice(0, 5), [],
      `every request started more than 1 s after the change answered 429 budget_exceeded (started after ${cut}): ${tallyShots(late)}`)
    assert.ok(lateForwards <= inFlightAtCut, `the partner got ${lateForwards} requests after the grace, only ${inFlightAtCut} were admitted before it`)
    const between = hot.load.shots.filter((s) => s.startedAt > changedAt && s.startedAt <= cut)
    assert.deepEqual(between.filter((s) => s.status !== 200 && s.code !== 'budget_exceeded'), [], `during the grace: 200 or 429 budget_exceeded only: ${tallyShots(between)}`)

    // the change took back every lease: used is exactly what was forwarded, and nothing is left
    const usage = await pollUsage(nodes[nodes.length - 1]!, hot.setup.keyId, (u) => u.budget?.used === hot.setup.received(), 3_000)
    assert.deepEqual(usage.budget, { limit: 1, used: hot.setup.received(), remaining: 0 })
  } finally {
    await hot.load.stop()
  }
}

/**
 * A rate limit lowered under load, from 100000/s to 1 per minute: once the 1 s grace has passed,
 * over the next 2 s at most one request per worker (`holders`) is admitted — the exact limit
 * admits one at most, a lease at most one more per worker — the rest are 429 rate_limited.
 */
export async function rateLimitLoweredUnderLoad (nodes: RelayKeyProcess[], partner: MockPartner, options: { loops: number; holders: number; diagnostic: (m: string) => void }): Promise<void> {
  const hot = await hotKey(nodes, partner, 'rate', { rate_limit: { requests: 100_000, per_seconds: 1 } }, options.loops)
  try {
    const patched = await nodes[0]!.admin('PATCH', `/admin/policies/${hot.setup.policyId}`, { rate_limit: { requests: 1, per_seconds: 60 } })
    const changedAt = Date.now()
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    const { late, lateForwards, inFlightAtCut } = await afterGrace(hot, nodes, changedAt, 2_000)
    options.diagnostic(`after the change: ${firstRefusals(hot.load.shots, nodes.length, changedAt, 'rate_limited')}; after the grace: ${tallyShots(late)}`)

    const admitted = late.filter((s) => s.status === 200).length
    assert.ok(admitted <= options.holders, `at most ${options.holders} admitted after the grace, got ${admitted}: ${tallyShots(late)}`)
    assert.deepEqual(late.filter((s) => s.status !== 200 && (s.status !== 429 || s.code !== 'rate_limited')).slice(0, 5), [], `the rest are 429 rate_limited: ${tallyShots(late)}`)
    assert.ok(lateForwards <= inFlightAtCut + admitted, `the partner got ${lateForwards} requests after the grace: ${inFlightAtCut} in flight + ${admitted} admitted`)
  } finally {
    await hot.load.stop()
  }
}
