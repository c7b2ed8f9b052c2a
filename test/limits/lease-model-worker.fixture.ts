// One gateway worker for lease-model.test.ts: a LeasedAdmission over a RedisAdmissionStore of its
// own (its own connection; a Cluster client on Redis Cluster), on the real clock. The parent
// sends bursts of requests for one key; each request goes `admitLocally(request) ?? await
// admit(request)` as the exchange's authorization step does (src/gateway/exchange-authorization.ts), and a planned share of the admitted ones is
// refunded as a 5xx would be. Every outcome is reported back (batched every few ms, so a worker
// killed with SIGKILL has reported all but its last moments). The parent also sends limit changes
// (recompiled, frozen specs and the invalidations an admin change publishes) and, at the end, a
// graceful stop: close() gives every leased unit back.
import { once } from 'node:events'
import { pathToFileURL } from 'node:url'
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises'
import { Cluster } from 'ioredis'
import { pino } from 'pino'
import { LeasedAdmission } from '../../src/limits/leased-admission.js'
import { rateLimitSpec } from '../../src/limits/compile-limits.js'
import { createRedisClient } from '../../src/store/redis/redis-client.js'
import { RedisAdmissionStore } from '../../src/store/redis/redis-admission-store.js'
import type { Admission, AdmissionRequest, BudgetSpec, RateLimitSpec } from '../../src/limits/admission.js'
import type { Invalidation } from '../../src/store/invalidation.js'

export interface ModelRateLimit {
  name: 'key' | 'customer'
  subject: string
  requests: number
  perSeconds: number
  burst: number
}

export interface ModelBudget {
  name: 'key' | 'customer'
  subject: string
  monthly: number
}

/** one virtual key as its compiled key context would have it */
export interface ModelKey {
  id: string
  /** consistency group (ownerGroup() of compile-limits.ts) */
  owner: string
  /** key limit first, then customer limit */
  limits: ModelRateLimit[]
  /** key budget first, then customer budget */
  budgets: ModelBudget[]
}

export interface ModelWorkerSetup {
  /** redis://… or redis+cluster://… */
  url: string
  prefix: string
  keys: ModelKey[]
}

export interface BurstMessage {
  type: 'burst'
  id: number
  /** index into the keys */
  key: number
  /** one request each */
  costs: number[]
  /** positions whose admission is refunded (when it reserved budget units) */
  refunds: number[]
  /** ms between an admission and its refund */
  refundDelayMs: number
  /** requests are started `chunks[i]` at a time, synchronously, then… */
  chunks: number[]
  /** …the worker yields: 0 = one event-loop turn, n = a timer of n ms */
  gaps: number[]
}

export interface ChangeMessage {
  type: 'change'
  /** keys whose context is recompiled: every spec object of theirs is new */
  keys: Array<{ index: number; key: ModelKey }>
  invalidations: Invalidation[]
}

export type ToModelWorker = BurstMessage | ChangeMessage | { type: 'stop' }

export interface WorkerStats {
  local: number
  store: number
  topUpCalls: number
  returnCalls: number
  grants: Record<string, number>
  grantedUnits: Record<string, number>
  returnedUnits: Record<string, number>
  /** units this worker holds now, by lease kind */
  held: Record<string, number>
}

export type FromModelWorker =
  | { type: 'ready' }
  /** flattened tuples of EVENT_SIZE numbers: burst, position, outcome, local (0/1), tBefore, tAfter */
  | { type: 'events'; events: number[] }
  | { type: 'done'; id: number; stats: WorkerStats }
  | { type: 'changed' }
  | { type: 'closed'; stats: WorkerStats }
  | { type: 'failure'; text: string }

export const EVENT_SIZE = 6
/** outcomes in an event tuple */
export const OUTCOME = {
  admitted: 0,
  rate_limited: 1,
  budget_exceeded: 2,
  upstream_quota_exceeded: 3,
  /** admit() rejected (GovernanceUnavailableError) */
  error: 4,
  /** the admission at this position was refunded (tBefore/tAfter: when the refund was done) */
  refunded: 5,
  refund_failed: 6,
} as const

interface CompiledKey {
  limits: readonly RateLimitSpec[]
  budgets: readonly BudgetSpec[]
  groups: { owner: string; partner: string }
}

/** what compileLimits() would build for the key: new frozen objects every time */
function compile (key: ModelKey): CompiledKey {
  return Object.freeze({
    limits: Object.freeze(key.limits.map((l) => rateLimitSpec(l.name, l.subject, { requests: l.requests, per_seconds: l.perSeconds, burst: l.burst }))),
    budgets: Object.freeze(key.budgets.map((b) => Object.freeze({ name: b.name, subject: b.subject, monthly: b.monthly }))),
    groups: Object.freeze({ owner: key.owner, partner: 'model-partner' }),
  })
}

async function main (): Promise<void> {
  const setup = JSON.parse(process.argv[2]!) as ModelWorkerSetup
  const contexts = setup.keys.map(compile)
  // as the gateway's data-plane connection: commands time out, nothing queues while disconnected
  const redis = createRedisClient(setup.url, { commandTimeoutMs: 5_000 })
  redis.on('error', () => {})
  if (redis.status !== 'ready') await once(redis, 'ready')
  const store = new RedisAdmissionStore(redis, { prefix: setup.prefix, cluster: redis instanceof Cluster })
  const leases = new LeasedAdmission(store, { enabled: true, logger: pino({ level: 'silent' }) })

  let events: number[] = []
  let flushTimer: NodeJS.Timeout | null = null
  const flush = (): void => {
    if (flushTimer !== null) clearTimeout(flushTimer)
    flushTimer = null
    if (events.length === 0) return
    process.send!({ type: 'events', events } satisfies FromModelWorker)
    events = []
  }
  const record = (burst: number, position: number, outcome: number, local: number, tBefore: number, tAfter: number): void => {
    events.push(burst, position, outcome, local, tBefore, tAfter)
    if (flushTimer === null) flushTimer = setTimeout(flush, 2)
  }
  const failure = (text: string): void => {
    process.send!({ type: 'failure', text } satisfies FromModelWorker)
  }

  const stats = (): WorkerStats => ({
    local: leases.stats.local,
    store: leases.stats.store,
    topUpCalls: leases.stats.topUpCalls,
    returnCalls: leases.stats.returnCalls,
    grants: Object.fromEntries(leases.stats.grants),
    grantedUnits: Object.fromEntries(leases.stats.grantedUnits),
    returnedUnits: Object.fromEntries(leases.stats.returnedUnits),
    held: Object.fromEntries(leases.heldUnits()),
  })

  /** one request, as the gateway decides it; then, if planned, its refund */
  const one = async (burst: BurstMessage, context: CompiledKey, position: number, refund: boolean): Promise<void> => {
    const request: AdmissionRequest = {
      limits: context.limits,
      budgets: context.budgets,
      cost: burst.costs[position]!,
      credentials: [],
      now: Date.now(),
      groups: context.groups,
    }
    const tBefore = Date.now()
    let admission: Admission | null = leases.admitLocally(request)
    const local = admission !== null
    if (admission === null) {
      try {
        admission = await leases.admit(request)
      } catch (err) {
        record(burst.id, position, OUTCOME.error, 0, tBefore, Date.now())
        failure(`admit: ${String(err)} (${String((err as Error).cause)})`)
        return
      }
    }
    record(burst.id, position, admission.ok ? OUTCOME.admitted : OUTCOME[admission.code], local ? 1 : 0, tBefore, local ? tBefore : Date.now())
    if (!admission.ok || admission.reservation === null || !refund) return
    // the upstream answered 5xx: the units go back
    if (burst.refundDelayMs > 0) await sleep(burst.refundDelayMs)
    else await tick()
    try {
      await leases.refund(admission.reservation)
      const at = Date.now()
      record(burst.id, position, OUTCOME.refunded, 0, at, at)
    } catch (err) {
      const at = Date.now()
      record(burst.id, position, OUTCOME.refund_failed, 0, at, at)
      failure(`refund: ${String(err)}`)
    }
  }

  const runBurst = async (burst: BurstMessage): Promise<void> => {
    const context = contexts[burst.key]!
    const refunds = new Set(burst.refunds)
    const running: Array<Promise<void>> = []
    let position = 0
    for (let c = 0; position < burst.costs.length; c++) {
      const size = burst.chunks[c % burst.chunks.length]!
      for (let k = 0; k < size && position < burst.costs.length; k++, position++) {
        running.push(one(burst, context, position, refunds.has(position)))
      }
      const gap = burst.gaps[c % burst.gaps.length]!
      if (gap === 0) await tick()
      else await sleep(gap)
    }
    await Promise.all(running)
    flush()
    process.send!({ type: 'done', id: burst.id, stats: stats() } satisfies FromModelWorker)
  }

  process.on('message', (message: ToModelWorker) => {
    switch (message.type) {
      case 'burst':
        runBurst(message).catch((err: unknown) => failure(`burst ${message.id}: ${String(err)}`))
        break
      case 'change':
        // as worker.ts: the key contexts are dropped (recompiled on next use), then the leases hear of it
        for (const { index, key } of message.keys) contexts[index] = compile(key)
        for (const invalidation of message.invalidations) leases.invalidate(invalidation)
        process.send!({ type: 'changed' } satisfies FromModelWorker)
        break
      case 'stop':
        flush()
        leases.close().then(() => {
          process.send!({ type: 'closed', stats: stats() } satisfies FromModelWorker, () => process.exit(0))
        }, (err: unknown) => {
          failure(`close: ${String(err)}`)
          process.exit(1)
        })
        break
    }
  })
  process.send!({ type: 'ready' } satisfies FromModelWorker)
}

// the test imports the message types and constants above: only a forked worker runs
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.send?.({ type: 'failure', text: `worker start: ${String(err)}` })
    process.exit(1)
  })
}
