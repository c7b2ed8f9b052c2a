// Limits and budgets in Redis. On a single Redis the decisions a worker collects in one
// event-loop turn go out as one EVALSHA (ADMIT_BATCH), each as atomic as if alone. On Redis
// Cluster a batch would mix hash slots, so each decision is its own call, and the key/customer
// group and the partner's credential quotas live in different slots: a request that needs a
// credential quota takes two calls (owner first, then credentials) and gives the owner's budget
// units and rate-limit room back if no credential has room.
import type { Cluster, Redis } from 'ioredis'
import { GovernanceUnavailableError } from '../../errors.js'
import type { Admission, AdmissionRequest, AdmissionStore, BudgetSpec, CredentialCandidate, RateLimitSpec, Reservation } from '../../limits/admission.js'
import { decodeAdmission, type AdmitReply } from '../../limits/admission-reply.js'
import { budgetMonth, secondsToNextMonth } from '../../limits/budget-month.js'
import { ADMIT_BATCH_LUA, ADMIT_LUA, REFUND_LUA } from './admission-scripts.js'

interface ScriptClient {
  relaykeyAdmit (numKeys: number, keysAndArgs: Array<string | number>): Promise<AdmitReply>
  relaykeyAdmitBatch (numKeys: number, keysAndArgs: Array<string | number>): Promise<number[]>
  relaykeyRefund (numKeys: number, ...args: Array<string | number>): Promise<number>
  get (key: string): Promise<string | null>
  ping (): Promise<string>
}

/** budget counters outlive their month long enough for last month's usage to be read */
const BUDGET_KEEP_SECONDS = 40 * 86_400
const NONE: readonly never[] = Object.freeze([])
/** decisions per ADMIT_BATCH call at most */
const MAX_BATCH = 256

interface PendingDecision {
  request: AdmissionRequest
  month: string
  resolve: (admission: Admission) => void
  reject: (err: unknown) => void
}

export interface RedisAdmissionOptions {
  prefix: string
  /** true on Redis Cluster: groups may not be mixed in one script call */
  cluster: boolean
  /** injected clock for tests; in production Redis TIME decides rate limits */
  now?: () => number
}

export class RedisAdmissionStore implements AdmissionStore {
  readonly #redis: Redis | Cluster
  readonly #client: ScriptClient
  readonly #prefix: string
  readonly #cluster: boolean
  readonly #fixedClock: boolean
  /** Redis key names per spec object (frozen, owned by a key context) */
  readonly #keyNames = new WeakMap<object, string>()
  readonly #budgetNames = new WeakMap<BudgetSpec, { month: string; key: string }>()
  /** decisions waiting for this event-loop turn's batch (single Redis only) */
  #pending: PendingDecision[] = []
  readonly #flush = (): void => this.#flushPending()
  #second = -1
  #currentMonth = ''
  #ttl = 0

  constructor (redis: Redis | Cluster, options: RedisAdmissionOptions) {
    this.#redis = redis
    redis.defineCommand('relaykeyAdmit', { lua: ADMIT_LUA })
    redis.defineCommand('relaykeyRefund', { lua: REFUND_LUA })
    redis.defineCommand('relaykeyAdmitBatch', { lua: ADMIT_BATCH_LUA })
    this.#client = redis as unknown as ScriptClient
    this.#prefix = options.prefix
    this.#cluster = options.cluster
    this.#fixedClock = options.now !== undefined
  }

  admit (request: AdmissionRequest): Promise<Admission> {
    return this.#cluster ? this.#admitOnCluster(request) : this.#admitBatched(request)
  }

  /** Redis Cluster: one call per decision, two when the owner's and the partner's slots differ */
  async #admitOnCluster (request: AdmissionRequest): Promise<Admission> {
    const month = this.#month(request.now)
    const split = request.credentials.length > 0 && (request.limits.length > 0 || request.budgets.length > 0)
    let reply: AdmitReply
    try {
      reply = await this.#call(request, month, true, !split)
    } catch (err) {
      throw new GovernanceUnavailableError('Redis did not answer the limits decision', err)
    }
    if (split && reply[0] === 0) {
      // Redis Cluster: the owner's part is taken; the credentials' part decides in its own slot.
      let credentials: AdmitReply
      try {
        credentials = await this.#call(request, month, false, true)
      } catch (err) {
        await this.#undoOwnerPart(request, month)
        throw new GovernanceUnavailableError('Redis did not answer the limits decision', err)
      }
      if (credentials[0] !== 0) await this.#undoOwnerPart(request, month)
      // the tightest rate limit is the owner part's (the credentials' part has none)
      reply = credentials[0] === 0
        ? [0, credentials[1], reply[2], reply[3], reply[4]]
        : [credentials[0], reply[2], credentials[2], reply[3], reply[4]]
    }
    return decodeAdmission(request, month, reply)
  }

  async refund (reservation: Reservation): Promise<void> {
    if (reservation.cost === 0 || reservation.budgets.length === 0) return
    const keys = reservation.budgets.map((b) => this.#budgetKey(reservation.owner, b, reservation.month))
    try {
      await this.#client.relaykeyRefund(keys.length, ...keys, reservation.cost, keys.length, '')
    } catch (err) {
      throw new GovernanceUnavailableError('Redis did not answer the budget refund', err)
    }
  }

  async budgetUsed (owner: string, budget: Pick<BudgetSpec, 'name' | 'subject'>, month: string): Promise<number> {
    try {
      return Number(await this.#client.get(this.#budgetKey(owner, budget, month)) ?? 0)
    } catch (err) {
      throw new GovernanceUnavailableError('Redis did not answer the budget read', err)
    }
  }

  /** gives back what the owner's part of a split decision took: budget units and rate-limit room */
  async #undoOwnerPart (request: AdmissionRequest, month: string): Promise<void> {
    const owner = `o:${request.groups.owner}`
    const budgetKeys = request.budgets.map((b) => this.#budgetKey(request.groups.owner, b, month))
    const rateKeys = request.limits.map((l) => this.#rateKey(owner, l))
    try {
      await this.#client.relaykeyRefund(budgetKeys.length + rateKeys.length, ...budgetKeys, ...rateKeys,
        request.cost, budgetKeys.length, this.#fixedClock ? request.now : '', ...request.limits.map((l) => l.intervalMs))
    } catch {
      // best effort: the refusal stands either way; the units stay spent
    }
  }

  async ping (): Promise<void> {
    await this.#client.ping()
  }

  async close (): Promise<void> {
    this.#redis.disconnect()
  }

  /** one ADMIT call with the owner's part, the credentials' part, or both */
  #call (request: AdmissionRequest, month: string, owner: boolean, credentials: boolean): Promise<AdmitReply> {
    const keys: Array<string | number> = []
    const args: Array<string | number> = []
    this.#appendDecision(keys, args, request, month, owner, credentials)
    return this.#client.relaykeyAdmit(keys.length, keys.concat(args))
  }

  /**
   * HOT PATH: one decision's keys and arguments, appended to the call being built. Key names
   * are built once per spec (specs live as long as their key context) and the month's numbers
   * once per second.
   */
  #appendDecision (keys: Array<string | number>, args: Array<string | number>, request: AdmissionRequest, month: string, owner: boolean, credentials: boolean): void {
    const limits = owner ? request.limits : NONE
    const budgets = owner ? request.budgets : NONE
    const candidates = credentials ? request.credentials : NONE
    for (let i = 0; i < limits.length; i++) keys.push(this.#limitKey(request.groups.owner, limits[i] as RateLimitSpec))
    for (let i = 0; i < budgets.length; i++) keys.push(this.#monthlyBudgetKey(request.groups.owner, budgets[i] as BudgetSpec, month))
    for (let i = 0; i < candidates.length; i++) keys.push(this.#credentialKey(request.groups.partner, candidates[i] as CredentialCandidate))
    args.push(this.#fixedClock ? request.now : '', limits.length, budgets.length, candidates.length, request.cost, this.#budgetTtl(request.now))
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i] as RateLimitSpec
      args.push(limit.intervalMs, limit.burst)
    }
    for (let i = 0; i < budgets.length; i++) args.push((budgets[i] as BudgetSpec).monthly)
    for (let i = 0; i < candidates.length; i++) {
      const quota = (candidates[i] as CredentialCandidate).quota
      args.push(quota === null ? 0 : quota.intervalMs, quota === null ? 0 : quota.burst)
    }
  }

  /**
   * HOT PATH (single Redis): decisions asked for in the same event-loop turn go to Redis as one
   * ADMIT_BATCH call — one command, one round trip, one Lua invocation for all of them.
   */
  #admitBatched (request: AdmissionRequest): Promise<Admission> {
    return new Promise<Admission>((resolve, reject) => {
      this.#pending.push({ request, month: this.#month(request.now), resolve, reject })
      if (this.#pending.length === 1) setImmediate(this.#flush)
      // bounded: a huge batch would be slow to answer, and one timeout would fail all of it
      else if (this.#pending.length >= MAX_BATCH) this.#flushPending()
    })
  }

  #flushPending (): void {
    const batch = this.#pending
    if (batch.length === 0) return // flushed early when it filled up
    this.#pending = []
    const keys: Array<string | number> = []
    const args: Array<string | number> = [batch.length]
    for (const p of batch) this.#appendDecision(keys, args, p.request, p.month, true, true)
    this.#client.relaykeyAdmitBatch(keys.length, keys.concat(args)).then((replies) => {
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i]!
        const o = i * 5
        p.resolve(decodeAdmission(p.request, p.month, [replies[o]!, replies[o + 1]!, replies[o + 2]!, replies[o + 3]!, replies[o + 4]!]))
      }
    }, (err: unknown) => {
      const failure = new GovernanceUnavailableError('Redis did not answer the limits decision', err)
      for (const p of batch) p.reject(failure)
    })
  }

  #limitKey (owner: string, limit: RateLimitSpec): string {
    let key = this.#keyNames.get(limit)
    if (key === undefined) {
      key = this.#rateKey(`o:${owner}`, limit)
      this.#keyNames.set(limit, key)
    }
    return key
  }

  #credentialKey (partner: string, candidate: CredentialCandidate): string {
    let key = this.#keyNames.get(candidate)
    if (key === undefined) {
      key = this.#rateKey(`p:${partner}`, { name: 'credential', subject: candidate.id })
      this.#keyNames.set(candidate, key)
    }
    return key
  }

  #monthlyBudgetKey (owner: string, budget: BudgetSpec, month: string): string {
    let named = this.#budgetNames.get(budget)
    if (named === undefined || named.month !== month) {
      named = { month, key: this.#budgetKey(owner, budget, month) }
      this.#budgetNames.set(budget, named)
    }
    return named.key
  }

  /** seconds a budget counter is kept: to the end of the month, plus time to read it afterwards */
  #budgetTtl (now: number): number {
    this.#tick(now)
    return this.#ttl
  }

  #month (now: number): string {
    this.#tick(now)
    return this.#currentMonth
  }

  /** the month's numbers change at most once a second */
  #tick (now: number): void {
    const second = Math.floor(now / 1000)
    if (second === this.#second) return
    this.#second = second
    this.#currentMonth = budgetMonth(now)
    this.#ttl = secondsToNextMonth(now) + BUDGET_KEEP_SECONDS
  }

  #rateKey (group: string, limit: Pick<RateLimitSpec, 'name' | 'subject'>): string {
    return `${this.#prefix}:{${group}}:rl:${limit.name}:${limit.subject}`
  }

  #budgetKey (owner: string, budget: Pick<BudgetSpec, 'name' | 'subject'>, month: string): string {
    return `${this.#prefix}:{o:${owner}}:budget:${budget.name}:${budget.subject}:${month}`
  }
}
