// Limits and budgets in Redis: one EVALSHA per request on a single Redis. On Redis Cluster the
// key/customer group and the partner's credential quotas live in different hash slots, so a
// request that needs a credential quota takes two calls (owner first, then credentials) and
// gives the owner's budget units back if no credential has room.
import type { Cluster, Redis } from 'ioredis'
import { GovernanceUnavailableError } from '../../errors.js'
import type { Admission, AdmissionRequest, AdmissionStore, BudgetSpec, CredentialCandidate, RateLimitSpec, Reservation } from '../../limits/admission.js'
import { decodeAdmission, type AdmitReply } from '../../limits/admission-reply.js'
import { budgetMonth, secondsToNextMonth } from '../../limits/budget-month.js'
import { ADMIT_LUA, REFUND_LUA } from './admission-scripts.js'

interface ScriptClient {
  relaykeyAdmit (numKeys: number, keysAndArgs: Array<string | number>): Promise<AdmitReply>
  relaykeyRefund (numKeys: number, ...args: Array<string | number>): Promise<number>
  get (key: string): Promise<string | null>
  ping (): Promise<string>
}

/** budget counters outlive their month long enough for last month's usage to be read */
const BUDGET_KEEP_SECONDS = 40 * 86_400
const NONE: readonly never[] = Object.freeze([])

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
  #second = -1
  #currentMonth = ''
  #ttl = 0

  constructor (redis: Redis | Cluster, options: RedisAdmissionOptions) {
    this.#redis = redis
    redis.defineCommand('relaykeyAdmit', { lua: ADMIT_LUA })
    redis.defineCommand('relaykeyRefund', { lua: REFUND_LUA })
    this.#client = redis as unknown as ScriptClient
    this.#prefix = options.prefix
    this.#cluster = options.cluster
    this.#fixedClock = options.now !== undefined
  }

  async admit (request: AdmissionRequest): Promise<Admission> {
    const month = this.#month(request.now)
    const split = this.#cluster && request.credentials.length > 0 && (request.limits.length > 0 || request.budgets.length > 0)
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
      reply = credentials[0] === 0 ? [0, credentials[1], reply[2], reply[3], reply[4]] : credentials
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
  /**
   * HOT PATH: one ADMIT call with the owner's part, the credentials' part, or both. Key names
   * are built once per spec (specs live as long as their key context) and the month's numbers
   * once per second; keys and arguments go to ioredis as one flat array.
   */
  #call (request: AdmissionRequest, month: string, owner: boolean, credentials: boolean): Promise<AdmitReply> {
    const limits = owner ? request.limits : NONE
    const budgets = owner ? request.budgets : NONE
    const candidates = credentials ? request.credentials : NONE
    const nKeys = limits.length + budgets.length + candidates.length
    const argv: Array<string | number> = new Array(nKeys + 6 + limits.length * 2 + budgets.length + candidates.length * 2)
    let k = 0
    for (let i = 0; i < limits.length; i++) argv[k++] = this.#limitKey(request.groups.owner, limits[i] as RateLimitSpec)
    for (let i = 0; i < budgets.length; i++) argv[k++] = this.#monthlyBudgetKey(request.groups.owner, budgets[i] as BudgetSpec, month)
    for (let i = 0; i < candidates.length; i++) argv[k++] = this.#credentialKey(request.groups.partner, candidates[i] as CredentialCandidate)
    argv[k++] = this.#fixedClock ? request.now : ''
    argv[k++] = limits.length
    argv[k++] = budgets.length
    argv[k++] = candidates.length
    argv[k++] = request.cost
    argv[k++] = this.#budgetTtl(request.now)
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i] as RateLimitSpec
      argv[k++] = limit.intervalMs
      argv[k++] = limit.burst
    }
    for (let i = 0; i < budgets.length; i++) argv[k++] = (budgets[i] as BudgetSpec).monthly
    for (let i = 0; i < candidates.length; i++) {
      const quota = (candidates[i] as CredentialCandidate).quota
      argv[k++] = quota === null ? 0 : quota.intervalMs
      argv[k++] = quota === null ? 0 : quota.burst
    }
    return this.#client.relaykeyAdmit(nKeys, argv)
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
