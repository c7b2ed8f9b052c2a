// Limits and budgets in Redis: one EVALSHA per request on a single Redis. On Redis Cluster the
// key/customer group and the partner's credential quotas live in different hash slots, so a
// request that needs a credential quota takes two calls (owner first, then credentials) and
// gives the owner's budget units back if no credential has room.
import type { Cluster, Redis } from 'ioredis'
import { GovernanceUnavailableError } from '../../errors.js'
import type { Admission, AdmissionRequest, AdmissionStore, BudgetSpec, RateLimitSpec, Reservation } from '../../limits/admission.js'
import { decodeAdmission, type AdmitReply } from '../../limits/admission-reply.js'
import { budgetMonth, secondsToNextMonth } from '../../limits/budget-month.js'
import { ADMIT_LUA, REFUND_LUA } from './admission-scripts.js'

interface ScriptClient {
  relaykeyAdmit (numKeys: number, ...args: Array<string | number>): Promise<AdmitReply>
  relaykeyRefund (numKeys: number, ...args: Array<string | number>): Promise<number>
  get (key: string): Promise<string | null>
  ping (): Promise<string>
}

/** budget counters outlive their month long enough for last month's usage to be read */
const BUDGET_KEEP_SECONDS = 40 * 86_400

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
    const month = budgetMonth(request.now)
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
  #call (request: AdmissionRequest, month: string, owner: boolean, credentials: boolean): Promise<AdmitReply> {
    const keys: string[] = []
    const args: Array<string | number> = []
    const limits = owner ? request.limits : []
    const budgets = owner ? request.budgets : []
    const candidates = credentials ? request.credentials : []
    for (const limit of limits) keys.push(this.#rateKey(`o:${request.groups.owner}`, limit))
    for (const budget of budgets) keys.push(this.#budgetKey(request.groups.owner, budget, month))
    for (const c of candidates) keys.push(this.#rateKey(`p:${request.groups.partner}`, { name: 'credential', subject: c.id }))
    args.push(this.#fixedClock ? request.now : '', limits.length, budgets.length, candidates.length, request.cost,
      secondsToNextMonth(request.now) + BUDGET_KEEP_SECONDS)
    for (const limit of limits) args.push(limit.intervalMs, limit.burst)
    for (const budget of budgets) args.push(budget.monthly)
    for (const c of candidates) args.push(c.quota === null ? 0 : c.quota.intervalMs, c.quota === null ? 0 : c.quota.burst)
    return this.#client.relaykeyAdmit(keys.length, ...keys, ...args)
  }

  #rateKey (group: string, limit: Pick<RateLimitSpec, 'name' | 'subject'>): string {
    return `${this.#prefix}:{${group}}:rl:${limit.name}:${limit.subject}`
  }

  #budgetKey (owner: string, budget: Pick<BudgetSpec, 'name' | 'subject'>, month: string): string {
    return `${this.#prefix}:{o:${owner}}:budget:${budget.name}:${budget.subject}:${month}`
  }
}
