// Steps 4–5 of the request flow as one decision: every rate limit (key, customer), every
// budget (key, customer) and the vendor quota of the credential, checked and taken together
// or not at all. Implementations: Redis (Lua, distributed mode) and SQLite (embedded mode);
// both run test/limits/admission-store.contract.ts. A decision may also grant leases (units a
// worker then admits locally, see leased-admission.ts); the stores only move units, the worker
// decides how many to ask for.

/** GCRA parameters of one limit, precomputed from a RateLimit when the key context compiles. */
export interface RateLimitSpec {
  /** which limit this is, for headers and errors: 'key' | 'customer' | 'credential' */
  readonly name: string
  /** storage id of the limited subject (key id, customer name, credential id) */
  readonly subject: string
  /** ms between requests at the sustained rate: per_seconds * 1000 / requests */
  readonly intervalMs: number
  /** requests that may arrive at once */
  readonly burst: number
  /** for RateLimit-Policy: the quota and the window in seconds */
  readonly quota: number
  readonly windowSeconds: number
}

export interface BudgetSpec {
  readonly name: 'key' | 'customer'
  readonly subject: string
  readonly monthly: number
}

/** A candidate credential; `quota` null means the vendor sets no limit on it. */
export interface CredentialCandidate {
  readonly id: string
  readonly quota: RateLimitSpec | null
}

export interface AdmissionRequest {
  /** key and customer rate limits, in the order they are checked */
  readonly limits: readonly RateLimitSpec[]
  readonly budgets: readonly BudgetSpec[]
  /** cost units this request reserves from every budget */
  readonly cost: number
  /**
   * Credentials in order of preference (the round-robin pick first). The first with room
   * under its quota is taken. Empty when no bound credential has a quota: nothing to check.
   */
  readonly credentials: readonly CredentialCandidate[]
  /** epoch ms of the decision; decides the budget month */
  readonly now: number
  /**
   * Consistency groups, for stores that shard (Redis Cluster): everything of one group is kept
   * together so it can be decided atomically. `owner` holds the key's and the customer's limits
   * and budgets (the customer's name, or the key id for a key without customer); `partner`
   * holds the quotas of the partner's credentials.
   */
  readonly groups: { readonly owner: string; readonly partner: string }
  /**
   * Lease top-ups to grant if the request is admitted, by position: the limits, then the
   * budgets, then the credentials (only the chosen one's counts). null: none asked.
   */
  readonly wants?: readonly number[] | null
}

/** What the client is told about a limit in the RateLimit headers. */
export interface LimitState {
  readonly name: string
  readonly remaining: number
  /** seconds until the limit is fully replenished */
  readonly resetSeconds: number
}

export type Admission =
  | {
    ok: true
    /** index into request.credentials, or -1 when it was empty */
    credential: number
    /** the state of the limit with the least room left (null when no rate limit applies) */
    tightest: LimitState | null
    /** what to give back if the upstream gives no response or answers 5xx */
    reservation: Reservation | null
    /**
     * Lease units granted on top of the request, laid out as AdmissionRequest.wants; null when
     * none were asked. Already taken from the shared counters: the worker now holds them.
     */
    grants: readonly number[] | null
    /** each rate limit's remaining room as this decision left it (before its grants), by position */
    remaining: readonly number[] | null
  }
  | {
    ok: false
    code: 'rate_limited' | 'budget_exceeded' | 'upstream_quota_exceeded'
    /** the limit or budget that refused */
    name: string
    retryAfterSeconds: number
    tightest: LimitState | null
  }

/** Budget units taken by an admitted request. */
export interface Reservation {
  readonly owner: string
  readonly budgets: readonly BudgetSpec[]
  readonly cost: number
  /** the budget month the units were taken from ('2026-11') */
  readonly month: string
}

export interface BudgetUsage {
  limit: number
  used: number
  remaining: number
}

/**
 * One limit as a lease names it: a rate limit or vendor quota (GCRA room, in emission
 * intervals) or a budget of one month (units), in its consistency group.
 */
export type LeaseSubject =
  /** `group`: 'o:<owner group>' for key and customer limits, 'p:<partner id>' for vendor quotas */
  | { readonly kind: 'rate'; readonly group: string; readonly spec: RateLimitSpec }
  /** `owner`: the owner group, as in AdmissionRequest.groups */
  | { readonly kind: 'budget'; readonly owner: string; readonly spec: BudgetSpec; readonly month: string }

export interface LeaseTopUp {
  readonly subject: LeaseSubject
  readonly want: number
  /** budgets: grants are a whole number of this (the requests' cost), so no unit is left over */
  readonly step: number
}

export interface LeaseTopUpResult {
  readonly granted: number
  /** rate limits: the room left after the grant; budgets: 0 */
  readonly remaining: number
}

export interface LeaseReturn {
  readonly subject: LeaseSubject
  readonly units: number
}

export interface AdmissionStore {
  /** one atomic decision; rejects (GovernanceUnavailableError) when the store does not answer in time */
  admit (request: AdmissionRequest): Promise<Admission>
  /**
   * Lease top-ups outside any request: each subject independently gets what it can, up to its
   * `want` and a share of its room (see LEASE_SHARE). Rejects like admit.
   */
  topUp (items: readonly LeaseTopUp[], now: number): Promise<LeaseTopUpResult[]>
  /** units of leases given back: budget units to the month's counter, rate room to the limit */
  giveBack (items: readonly LeaseReturn[], now: number): Promise<void>
  /** gives the reserved units back; best effort, failures are logged by the caller */
  refund (reservation: Reservation): Promise<void>
  /** units used of a budget in a month; `owner` is the budget's consistency group */
  budgetUsed (owner: string, budget: Pick<BudgetSpec, 'name' | 'subject'>, month: string): Promise<number>
  ping (): Promise<void>
  close (): Promise<void>
}

/**
 * The most of its room a single grant may take: a lease is never more than this share of a
 * budget's remainder (1/32) or of a rate limit's room (1/8), a grant under MIN_GRANT is not
 * made, and a budget with fewer than BUDGET_LEASE_FLOOR units left is not leased at all. Near
 * the edge every holder is thus back to one exact decision per request: concurrent requests
 * against a small remainder are decided as they were without leases, none of it held elsewhere.
 */
export const LEASE_SHARE = { budget: 32, rate: 8 } as const
export const MIN_GRANT = 2
export const BUDGET_LEASE_FLOOR = 1024
