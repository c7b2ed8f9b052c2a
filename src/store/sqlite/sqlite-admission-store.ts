// Limits and budgets in embedded mode: the decision of the Redis ADMIT script
// (src/store/redis/admission-scripts.ts), run as one BEGIN IMMEDIATE transaction on the SQLite
// file every worker of the node opens. IMMEDIATE takes the file's write lock before the first
// read, so two workers can never both see the same room and both take it.
import Database from 'better-sqlite3'
import { GovernanceUnavailableError } from '../../errors.js'
import {
  BUDGET_LEASE_FLOOR, LEASE_SHARE, MIN_GRANT,
  type Admission, type AdmissionRequest, type AdmissionStore, type BudgetSpec, type LeaseReturn,
  type LeaseTopUp, type LeaseTopUpResult, type Reservation,
} from '../../limits/admission.js'
import {
  decodeAdmission, replyLength, ADMITTED, BUDGET_EXCEEDED, QUOTA_EXCEEDED, RATE_LIMITED, type AdmitReply,
} from '../../limits/admission-reply.js'
import { configureSqliteConnection } from './schema.js'
import { budgetMonth } from '../../limits/budget-month.js'

// Not STRICT: with an interval that is not a whole number of ms a TAT keeps its fraction (stored
// as REAL), exactly as the Lua script keeps it. Created here rather than in the control store's
// user_version list: these rows are counters, not state a migration ever has to reshape.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS rate_limit_state (
  key        TEXT PRIMARY KEY,
  tat        INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS budget_usage (
  owner   TEXT NOT NULL,
  name    TEXT NOT NULL,
  subject TEXT NOT NULL,
  month   TEXT NOT NULL,
  used    INTEGER NOT NULL,
  PRIMARY KEY (owner, name, subject, month)
) WITHOUT ROWID;
`

/** a rate-limit row outlives its TAT by this much, as the Redis key's PX does */
const RATE_KEEP_MS = 1000
/** budget rows stay readable this long after their month, like the Redis counters */
const BUDGET_KEEP_MS = 40 * 86_400_000
/** how often (store clock) one process sweeps expired rows */
const PURGE_EVERY_MS = 60_000

export interface SqliteAdmissionStoreOptions {
  /** the clock rate limits run on; Date.now unless a test injects one */
  now?: () => number
  /** close() closes the database too; false (the default) when the handle is shared */
  ownsDatabase?: boolean
}

export interface OpenSqliteAdmissionOptions {
  now?: () => number
  /** how long a decision waits for another process's write lock before failing closed */
  busyTimeoutMs?: number
}

interface Statements {
  tat: Database.Statement<[string], number>
  setTat: Database.Statement<[string, number, number]>
  used: Database.Statement<[string, string, string, string], number>
  addUsed: Database.Statement<[string, string, string, string, number]>
  refund: Database.Statement<[number, string, string, string, string]>
  purgeRates: Database.Statement<[number]>
  purgeBudgets: Database.Statement<[string]>
  ping: Database.Statement<[], number>
}

export class SqliteAdmissionStore implements AdmissionStore {
  readonly #db: Database.Database
  readonly #ownsDatabase: boolean
  readonly #now: () => number
  readonly #q: Statements
  readonly #admit: Database.Transaction<(request: AdmissionRequest, now: number, month: string) => AdmitReply>
  readonly #refund: Database.Transaction<(reservation: Reservation) => void>
  readonly #topUp: Database.Transaction<(items: readonly LeaseTopUp[], now: number) => LeaseTopUpResult[]>
  readonly #giveBack: Database.Transaction<(items: readonly LeaseReturn[], now: number) => void>
  /** rate-limit keys of the decision in progress; decisions never interleave (synchronous) */
  readonly #keys: string[]
  readonly #tats: number[]
  /** the budgets' used units as the decision in progress read them */
  readonly #used: number[]
  #purgeAt: number

  /** `db` should be in WAL mode with a busy timeout (see openSqliteAdmissionStore) */
  constructor (db: Database.Database, options: SqliteAdmissionStoreOptions = {}) {
    this.#db = db
    this.#ownsDatabase = options.ownsDatabase ?? false
    this.#now = options.now ?? Date.now
    // IMMEDIATE: workers starting together wait for each other instead of racing the CREATEs
    db.transaction(() => db.exec(SCHEMA)).immediate()
    this.#q = {
      tat: db.prepare<[string], number>('SELECT tat FROM rate_limit_state WHERE key = ?').pluck(),
      setTat: db.prepare(`INSERT INTO rate_limit_state (key, tat, expires_at) VALUES (?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET tat = excluded.tat, expires_at = excluded.expires_at`),
      used: db.prepare<[string, string, string, string], number>(
        'SELECT used FROM budget_usage WHERE owner = ? AND name = ? AND subject = ? AND month = ?').pluck(),
      addUsed: db.prepare(`INSERT INTO budget_usage (owner, name, subject, month, used) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (owner, name, subject, month) DO UPDATE SET used = used + excluded.used`),
      refund: db.prepare(`UPDATE budget_usage SET used = max(0, used - ?)
        WHERE owner = ? AND name = ? AND subject = ? AND month = ?`),
      purgeRates: db.prepare('DELETE FROM rate_limit_state WHERE expires_at < ?'),
      purgeBudgets: db.prepare('DELETE FROM budget_usage WHERE month < ?'),
      ping: db.prepare<[], number>('SELECT 1').pluck(),
    }
    this.#admit = db.transaction((request: AdmissionRequest, now: number, month: string) => this.#decide(request, now, month))
    this.#refund = db.transaction((reservation: Reservation) => this.#refundUnits(reservation))
    this.#topUp = db.transaction((items: readonly LeaseTopUp[], now: number) => items.map((item) => this.#grantOne(item, now)))
    this.#giveBack = db.transaction((items: readonly LeaseReturn[], now: number) => {
      for (const item of items) this.#returnOne(item, now)
    })
    this.#keys = []
    this.#tats = []
    this.#used = []
    this.#purgeAt = 0
  }

  async admit (request: AdmissionRequest): Promise<Admission> {
    const now = this.#now()
    const month = budgetMonth(request.now)
    let reply: AdmitReply
    try {
      reply = this.#admit.immediate(request, now, month)
    } catch (err) {
      throw new GovernanceUnavailableError('SQLite did not answer the limits decision', err)
    }
    if (now >= this.#purgeAt) this.#purge(now, request.now)
    return decodeAdmission(request, month, reply)
  }

  async refund (reservation: Reservation): Promise<void> {
    if (reservation.cost === 0 || reservation.budgets.length === 0) return
    try {
      this.#refund.immediate(reservation)
    } catch (err) {
      throw new GovernanceUnavailableError('SQLite did not take the budget refund', err)
    }
  }

  async topUp (items: readonly LeaseTopUp[], _now: number): Promise<LeaseTopUpResult[]> {
    try {
      return this.#topUp.immediate(items, this.#now())
    } catch (err) {
      throw new GovernanceUnavailableError('SQLite did not answer the lease top-up', err)
    }
  }

  async giveBack (items: readonly LeaseReturn[], _now: number): Promise<void> {
    try {
      this.#giveBack.immediate(items, this.#now())
    } catch (err) {
      throw new GovernanceUnavailableError('SQLite did not take the lease return', err)
    }
  }

  async budgetUsed (owner: string, budget: Pick<BudgetSpec, 'name' | 'subject'>, month: string): Promise<number> {
    try {
      return this.#q.used.get(owner, budget.name, budget.subject, month) ?? 0
    } catch (err) {
      throw new GovernanceUnavailableError('SQLite did not answer the budget usage', err)
    }
  }

  async ping (): Promise<void> {
    try {
      this.#q.ping.get()
    } catch (err) {
      throw new GovernanceUnavailableError('SQLite did not answer', err)
    }
  }

  async close (): Promise<void> {
    if (this.#ownsDatabase) this.#db.close()
  }

  // HOT PATH: runs inside the IMMEDIATE transaction. Same steps, same integer replies as
  // ADMIT_LUA (grants included): check every rate limit, every budget, then pick a credential;
  // write only when all passed. Keep the two in step.
  #decide (request: AdmissionRequest, now: number, month: string): AdmitReply {
    const { limits, budgets, credentials, cost } = request
    const wants = request.wants ?? null
    const owner = request.groups.owner
    const keys = this.#keys
    const tats = this.#tats
    const reply = new Array<number>(replyLength(request)).fill(0)
    const nR = limits.length
    const nB = budgets.length
    const nC = credentials.length
    let tightIndex = 0
    let tightRemaining = -1
    let tightReset = 0
    for (let i = 0; i < nR; i++) {
      const limit = limits[i]!
      const interval = limit.intervalMs
      keys[i] = rateRow(`o:${owner}`, limit.name, limit.subject)
      const tat = this.#tatOf(keys[i]!, now)
      const nextTat = tat + interval
      const over = nextTat - now - limit.burst * interval
      if (over > 0) return head(reply, RATE_LIMITED, i + 1, Math.trunc(over), 0, Math.trunc(tat - now))
      tats[i] = nextTat
      const remaining = Math.floor((limit.burst * interval - (nextTat - now)) / interval)
      reply[5 + nR + nB + nC + i] = remaining
      if (tightRemaining < 0 || remaining < tightRemaining) {
        tightIndex = i + 1
        tightRemaining = remaining
        tightReset = nextTat - now
      }
    }
    const used = this.#used
    for (let i = 0; i < nB; i++) {
      const budget = budgets[i]!
      used[i] = this.#q.used.get(owner, budget.name, budget.subject, month) ?? 0
      if (used[i]! + cost > budget.monthly) {
        return head(reply, BUDGET_EXCEEDED, i + 1, tightIndex, tightRemaining, Math.trunc(tightReset))
      }
    }
    let chosen = 0
    let chosenKey = ''
    let chosenTat = 0
    let chosenRoom = 0
    let soonest = -1
    for (let i = 0; i < nC; i++) {
      const quota = credentials[i]!.quota
      // a credential without quota (Lua: interval 0) is always taken
      if (quota === null || quota.intervalMs === 0) {
        chosen = i + 1
        break
      }
      const key = rateRow(`p:${request.groups.partner}`, 'credential', credentials[i]!.id)
      const tat = this.#tatOf(key, now)
      const nextTat = tat + quota.intervalMs
      const over = nextTat - now - quota.burst * quota.intervalMs
      if (over <= 0) {
        chosen = i + 1
        chosenKey = key
        chosenTat = nextTat
        chosenRoom = Math.floor((quota.burst * quota.intervalMs - (nextTat - now)) / quota.intervalMs)
        break
      }
      if (soonest < 0 || over < soonest) soonest = over
    }
    if (nC > 0 && chosen === 0) return head(reply, QUOTA_EXCEEDED, tightIndex, Math.trunc(soonest), tightRemaining, Math.trunc(tightReset))

    for (let i = 0; i < nR; i++) {
      const g = wants === null ? 0 : grant(wants[i]!, reply[5 + nR + nB + nC + i]!, LEASE_SHARE.rate, 1)
      const tat = tats[i]! + g * limits[i]!.intervalMs
      this.#q.setTat.run(keys[i]!, tat, tat + RATE_KEEP_MS)
      reply[5 + i] = g
    }
    for (let i = 0; i < nB; i++) {
      const budget = budgets[i]!
      const g = wants === null ? 0 : grant(wants[nR + i]!, budget.monthly - used[i]! - cost, LEASE_SHARE.budget, cost)
      this.#q.addUsed.run(owner, budget.name, budget.subject, month, cost + g)
      reply[5 + nR + i] = g
    }
    if (chosenTat > 0) {
      const quota = credentials[chosen - 1]!.quota!
      const g = wants === null ? 0 : grant(wants[nR + nB + chosen - 1]!, chosenRoom, LEASE_SHARE.rate, 1)
      chosenTat += g * quota.intervalMs
      this.#q.setTat.run(chosenKey, chosenTat, chosenTat + RATE_KEEP_MS)
      reply[5 + nR + nB + chosen - 1] = g
    }
    return head(reply, ADMITTED, chosen, tightIndex, tightRemaining, Math.trunc(tightReset))
  }

  #grantOne ({ subject, want, step }: LeaseTopUp, now: number): LeaseTopUpResult {
    if (subject.kind === 'rate') {
      const { spec } = subject
      const key = rateRow(subject.group, spec.name, spec.subject)
      let tat = this.#tatOf(key, now)
      const room = Math.floor((spec.burst * spec.intervalMs - (tat - now)) / spec.intervalMs)
      const g = grant(want, room, LEASE_SHARE.rate, 1)
      if (g > 0) {
        tat += g * spec.intervalMs
        this.#q.setTat.run(key, tat, tat + RATE_KEEP_MS)
      }
      return { granted: g, remaining: room - g }
    }
    const { spec } = subject
    const used = this.#q.used.get(subject.owner, spec.name, spec.subject, subject.month) ?? 0
    const g = grant(want, spec.monthly - used, LEASE_SHARE.budget, step)
    if (g > 0) this.#q.addUsed.run(subject.owner, spec.name, spec.subject, subject.month, g)
    return { granted: g, remaining: 0 }
  }

  #returnOne ({ subject, units }: LeaseReturn, now: number): void {
    if (subject.kind === 'budget') {
      this.#q.refund.run(units, subject.owner, subject.spec.name, subject.spec.subject, subject.month)
      return
    }
    const key = rateRow(subject.group, subject.spec.name, subject.spec.subject)
    const tat = this.#q.tat.get(key)
    if (tat === undefined || tat <= now) return
    const back = Math.max(now, tat - units * subject.spec.intervalMs)
    this.#q.setTat.run(key, back, back + RATE_KEEP_MS)
  }

  /** the stored TAT, or now when there is none or it lies in the past */
  #tatOf (key: string, now: number): number {
    const tat = this.#q.tat.get(key)
    return tat === undefined || tat < now ? now : tat
  }

  #refundUnits (reservation: Reservation): void {
    for (const budget of reservation.budgets) {
      this.#q.refund.run(reservation.cost, reservation.owner, budget.name, budget.subject, reservation.month)
    }
  }

  /**
   * Sweeps rate-limit rows whose TAT has passed (they mean the same as no row) and budget rows
   * of months nobody reads any more. Best effort: a busy file just means next time.
   */
  #purge (now: number, requestNow: number): void {
    this.#purgeAt = now + PURGE_EVERY_MS
    try {
      this.#q.purgeRates.run(now)
      // months are counted on the requests' clock, as they were charged
      this.#q.purgeBudgets.run(budgetMonth(requestNow - BUDGET_KEEP_MS))
    } catch {
      // counters stay correct without the sweep; only the file grows until the next one
    }
  }
}

/** the row of a rate limit or quota: `o:<owner>:key:<id>`, `p:<partner>:credential:<id>` */
function rateRow (group: string, name: string, subject: string): string {
  return `${group}:${name}:${subject}`
}

/**
 * a lease grant: at most `want`, at most 1/share of the room, a whole number of `step`, none
 * under MIN_GRANT, no budget under BUDGET_LEASE_FLOOR (as in the Lua)
 */
function grant (want: number, room: number, share: number, step: number): number {
  if (want <= 0 || (share === LEASE_SHARE.budget && room < BUDGET_LEASE_FLOOR)) return 0
  let g = Math.min(want, Math.floor(room / share))
  if (step > 1) g -= g % step
  return g < MIN_GRANT ? 0 : g
}

/** the five head numbers of a reply; an admission's grants and rooms are in place, a refusal has none */
function head (reply: AdmitReply, status: number, index: number, value: number, remaining: number, resetMs: number): AdmitReply {
  if (status !== ADMITTED) reply.fill(0, 5)
  reply[0] = status
  reply[1] = index
  reply[2] = value
  reply[3] = remaining
  reply[4] = resetMs
  return reply
}

/**
 * Opens the embedded-mode file (`RELAYKEY_DATA_DIR/relaykey.db`, shared with the control store
 * and every worker) for limits and budgets, with the settings every process sharing it uses.
 */
export function openSqliteAdmissionStore (file: string, options: OpenSqliteAdmissionOptions = {}): SqliteAdmissionStore {
  const db = new Database(file)
  try {
    configureSqliteConnection(db, options.busyTimeoutMs ?? 5000)
    return new SqliteAdmissionStore(db, { now: options.now, ownsDatabase: true })
  } catch (err) {
    db.close()
    throw err
  }
}
