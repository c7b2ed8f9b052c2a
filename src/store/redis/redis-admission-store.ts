// Limits and budgets in Redis. On a single Redis the decisions a worker collects in one
// event-loop turn go out as one EVALSHA (ADMIT_BATCH), each as atomic as if alone. On Redis
// Cluster a batch would mix hash slots, so each decision is its own call, and the key/customer
// group and the partner's credential quotas live in different slots: a request that needs a
// credential quota takes two calls (owner first, then credentials) and gives the owner's budget
// units and rate-limit room back if no credential has room. Lease top-ups and returns go in one
// call per consistency group (one call in all on a single Redis).
import type { Cluster, Redis } from 'ioredis'
import { GovernanceUnavailableError } from '../../errors.js'
import type {
  Admission, AdmissionRequest, AdmissionStore, BudgetSpec, CredentialCandidate, LeaseReturn, LeaseSubject,
  LeaseTopUp, LeaseTopUpResult, RateLimitSpec, Reservation,
} from '../../limits/admission.js'
import { decodeAdmission, replyLength, type AdmitReply } from '../../limits/admission-reply.js'
import { budgetMonth, secondsToNextMonth } from '../../limits/budget-month.js'
import { ADMIT_BATCH_LUA, ADMIT_LUA, GIVE_BACK_LUA, REFUND_LUA, TOP_UP_LUA } from './admission-scripts.js'

interface ScriptClient {
  relaykeyAdmit (numKeys: number, keysAndArgs: Array<string | number>): Promise<AdmitReply>
  relaykeyAdmitBatch (numKeys: number, keysAndArgs: Array<string | number>): Promise<number[]>
  relaykeyTopUp (numKeys: number, keysAndArgs: Array<string | number>): Promise<number[]>
  relaykeyGiveBack (numKeys: number, keysAndArgs: Array<string | number>): Promise<number>
  relaykeyRefund (numKeys: number, ...args: Array<string | number>): Promise<number>
  get (key: string): Promise<string | null>
  ping (): Promise<string>
}

/** budget counters outlive their month long enough for last month's usage to be read */
const BUDGET_KEEP_SECONDS = 40 * 86_400
const NONE: readonly never[] = Object.freeze([])
const NO_GRANT: LeaseTopUpResult = Object.freeze({ granted: 0, remaining: 0 })
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
    redis.defineCommand('relaykeyTopUp', { lua: TOP_UP_LUA })
    redis.defineCommand('relaykeyGiveBack', { lua: GIVE_BACK_LUA })
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
        await this.#undoOwnerPart(request, month, reply)
        throw new GovernanceUnavailableError('Redis did not answer the limits decision', err)
      }
      if (credentials[0] !== 0) await this.#undoOwnerPart(request, month, reply)
      reply = mergeSplitReplies(request, reply, credentials)
    } else if (split) {
      reply = mergeSplitReplies(request, reply, null)
    }
    return decodeAdmission(request, month, reply)
  }

  async topUp (items: readonly LeaseTopUp[], now: number): Promise<LeaseTopUpResult[]> {
    const out = new Array<LeaseTopUpResult>(items.length).fill(NO_GRANT)
    const calls: Array<Promise<void>> = []
    for (const indices of this.#bySlot(items)) {
      const keys: Array<string | number> = []
      const args: Array<string | number> = [this.#fixedClock ? now : '']
      for (const i of indices) {
        const { subject, want, step } = items[i]!
        keys.push(this.#subjectKey(subject))
        if (subject.kind === 'rate') args.push(1, subject.spec.intervalMs, subject.spec.burst, want, 1)
        else args.push(2, subject.spec.monthly, this.#budgetTtl(now), want, step)
      }
      calls.push(this.#client.relaykeyTopUp(keys.length, keys.concat(args)).then((reply) => {
        for (let j = 0; j < indices.length; j++) out[indices[j]!] = { granted: reply[2 * j]!, remaining: reply[2 * j + 1]! }
      }))
    }
    // on Redis Cluster one group's call may fail while another's was applied: the applied grants
    // are kept (the worker holds them, and gives them back), the failed ones count as none
    const settled = await Promise.allSettled(calls)
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined && settled.every((r) => r.status === 'rejected')) {
      throw new GovernanceUnavailableError('Redis did not answer the lease top-up', failed.reason)
    }
    return out
  }

  async giveBack (items: readonly LeaseReturn[], now: number): Promise<void> {
    const calls: Array<Promise<number>> = []
    for (const indices of this.#bySlot(items)) {
      const keys: Array<string | number> = []
      const args: Array<string | number> = [this.#fixedClock ? now : '']
      for (const i of indices) {
        const { subject, units } = items[i]!
        keys.push(this.#subjectKey(subject))
        args.push(subject.kind === 'rate' ? 1 : 2, units, subject.kind === 'rate' ? subject.spec.intervalMs : 0)
      }
      calls.push(this.#client.relaykeyGiveBack(keys.length, keys.concat(args)))
    }
    try {
      await Promise.all(calls)
    } catch (err) {
      throw new GovernanceUnavailableError('Redis did not take the lease return', err)
    }
  }

  /** positions of `items` grouped by hash slot group: one group (one call) on a single Redis */
  #bySlot (items: ReadonlyArray<{ subject: LeaseSubject }>): number[][] {
    if (!this.#cluster) return [items.map((_, i) => i)]
    const groups = new Map<string, number[]>()
    for (let i = 0; i < items.length; i++) {
      const subject = items[i]!.subject
      const group = subject.kind === 'rate' ? subject.group : `o:${subject.owner}`
      let list = groups.get(group)
      if (list === undefined) groups.set(group, list = [])
      list.push(i)
    }
    return [...groups.values()]
  }

  #subjectKey (subject: LeaseSubject): string {
    return subject.kind === 'rate'
      ? this.#rateKey(subject.group, subject.spec)
      : this.#budgetKey(subject.owner, subject.spec, subject.month)
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

  /**
   * gives back what the owner's part of a split decision took: budget units and rate-limit
   * room, and any lease units it granted
   */
  async #undoOwnerPart (request: AdmissionRequest, month: string, ownerReply: AdmitReply): Promise<void> {
    const owner = `o:${request.groups.owner}`
    const budgetKeys = request.budgets.map((b) => this.#budgetKey(request.groups.owner, b, month))
    const rateKeys = request.limits.map((l) => this.#rateKey(owner, l))
    const grants: LeaseReturn[] = []
    for (let i = 0; i < request.limits.length; i++) {
      const g = ownerReply[5 + i]!
      if (g > 0) grants.push({ subject: { kind: 'rate', group: owner, spec: request.limits[i]! }, units: g })
    }
    for (let i = 0; i < request.budgets.length; i++) {
      const g = ownerReply[5 + request.limits.length + i]!
      if (g > 0) grants.push({ subject: { kind: 'budget', owner: request.groups.owner, spec: request.budgets[i]!, month }, units: g })
    }
    try {
      await this.#client.relaykeyRefund(budgetKeys.length + rateKeys.length, ...budgetKeys, ...rateKeys,
        request.cost, budgetKeys.length, this.#fixedClock ? request.now : '', ...request.limits.map((l) => l.intervalMs))
      if (grants.length > 0) await this.giveBack(grants, request.now)
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
    const wants = request.wants ?? null
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i] as RateLimitSpec
      args.push(limit.intervalMs, limit.burst, wants === null ? 0 : wants[i]!)
    }
    const nR = request.limits.length
    for (let i = 0; i < budgets.length; i++) args.push((budgets[i] as BudgetSpec).monthly, wants === null ? 0 : wants[nR + i]!)
    const nRB = nR + request.budgets.length
    for (let i = 0; i < candidates.length; i++) {
      const quota = (candidates[i] as CredentialCandidate).quota
      args.push(quota === null ? 0 : quota.intervalMs, quota === null ? 0 : quota.burst, wants === null ? 0 : wants[nRB + i]!)
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
      let at = 0
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i]!
        p.resolve(decodeAdmission(p.request, p.month, replies, at))
        at += replyLength(p.request)
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

/**
 * Redis Cluster: the owner part's reply (rate limits and budgets, no credentials) and the
 * credentials part's (or null when it was not asked because the owner part refused), as the
 * one reply an unsplit decision would have given.
 */
function mergeSplitReplies (request: AdmissionRequest, owner: AdmitReply, credentials: AdmitReply | null): AdmitReply {
  const nR = request.limits.length
  const nB = request.budgets.length
  const nC = request.credentials.length
  const out = new Array<number>(replyLength(request)).fill(0)
  // the tightest rate limit is the owner part's (the credentials' part has none)
  if (credentials === null || credentials[0] === 0) {
    out[0] = owner[0]!
    out[1] = credentials === null ? owner[1]! : credentials[1]!
    out[2] = owner[2]!
  } else {
    out[0] = credentials[0]!
    out[1] = owner[2]!
    out[2] = credentials[2]!
  }
  out[3] = owner[3]!
  out[4] = owner[4]!
  if (out[0] !== 0) return out
  for (let i = 0; i < nR + nB; i++) out[5 + i] = owner[5 + i]!
  for (let i = 0; i < nC; i++) out[5 + nR + nB + i] = credentials![5 + i]!
  for (let i = 0; i < nR; i++) out[5 + nR + nB + nC + i] = owner[5 + nR + nB + i]!
  return out
}
