// The raw answer of one admission decision and how it becomes an Admission. The Redis ADMIT
// script returns it and the SQLite store computes the same tuple, so both decode it here and
// agree on result shapes and retry-after rounding.
import type { Admission, AdmissionRequest, LimitState, RateLimitSpec, Reservation } from './admission.js'
import { secondsToNextMonth } from './budget-month.js'

/**
 * `[status, index, value, remaining, resetMs, grants…, rooms…]`, integers (Redis truncates Lua
 * numbers); `grants` has one number per limit, budget and credential of the request (the lease
 * units granted on top of it, 0 unless asked and admitted), `rooms` one per rate limit (its
 * remaining room as the decision left it, before grants; 0 on a refusal):
 *   ADMITTED        index = chosen credential (1-based, 0 = none asked), value = tightest limit
 *                   (1-based, 0 = none), remaining and resetMs of that limit
 *   RATE_LIMITED    index = refusing limit (1-based), value = ms until it fits, resetMs = its TAT ahead of now
 *   BUDGET_EXCEEDED index = refusing budget (1-based), value, remaining, resetMs as for ADMITTED
 *   QUOTA_EXCEEDED  index = tightest limit, value = ms until the soonest candidate credential
 *                   fits, remaining and resetMs of the tightest limit
 * The tightest limit's remaining and resetMs are always as if the request had been taken.
 */
export type AdmitReply = number[]

/** numbers in one decision's reply */
export function replyLength (request: AdmissionRequest): number {
  return 5 + request.limits.length * 2 + request.budgets.length + request.credentials.length
}

export const ADMITTED = 0
export const RATE_LIMITED = 1
export const BUDGET_EXCEEDED = 2
export const QUOTA_EXCEEDED = 3

/** `reply` holds this decision's numbers from `at` on (a batch's replies are flattened) */
export function decodeAdmission (request: AdmissionRequest, month: string, reply: AdmitReply, at = 0): Admission {
  const status = reply[at]!
  const index = reply[at + 1]!
  const value = reply[at + 2]!
  const remaining = reply[at + 3]!
  const resetMs = reply[at + 4]!
  switch (status) {
    case ADMITTED:
      return {
        ok: true,
        credential: request.credentials.length === 0 ? -1 : index - 1,
        tightest: tightestOf(request.limits, value, remaining, resetMs),
        reservation: reservationOf(request, month),
        grants: request.wants == null ? null : grantsOf(request, reply, at),
        remaining: request.wants == null || request.limits.length === 0 ? null : roomsOf(request, reply, at),
      }
    case RATE_LIMITED: {
      const limit = request.limits[index - 1]!
      return {
        ok: false,
        code: 'rate_limited',
        name: limit.name,
        retryAfterSeconds: Math.max(1, Math.ceil(value / 1000)),
        tightest: { name: limit.name, remaining: 0, resetSeconds: Math.ceil(resetMs / 1000) },
      }
    }
    case BUDGET_EXCEEDED:
      return {
        ok: false,
        code: 'budget_exceeded',
        name: request.budgets[index - 1]!.name,
        retryAfterSeconds: secondsToNextMonth(request.now),
        tightest: untakenState(request.limits, value, remaining, resetMs),
      }
    default:
      return {
        ok: false,
        code: 'upstream_quota_exceeded',
        name: 'credential',
        retryAfterSeconds: Math.max(1, Math.ceil(value / 1000)),
        tightest: untakenState(request.limits, index, remaining, resetMs),
      }
  }
}

function grantsOf (request: AdmissionRequest, reply: AdmitReply, at: number): number[] {
  const n = request.limits.length + request.budgets.length + request.credentials.length
  const out = new Array<number>(n)
  for (let i = 0; i < n; i++) out[i] = reply[at + 5 + i] ?? 0
  return out
}

function roomsOf (request: AdmissionRequest, reply: AdmitReply, at: number): number[] {
  const from = at + 5 + request.limits.length + request.budgets.length + request.credentials.length
  const out = new Array<number>(request.limits.length)
  for (let i = 0; i < out.length; i++) out[i] = reply[from + i] ?? 0
  return out
}

/** the budget units an admitted request took, or null when it took none */
function reservationOf (request: AdmissionRequest, month: string): Reservation | null {
  if (request.budgets.length === 0 || request.cost === 0) return null
  return { owner: request.groups.owner, budgets: request.budgets, cost: request.cost, month }
}

function tightestOf (limits: readonly RateLimitSpec[], index: number, remaining: number, resetMs: number): LimitState | null {
  if (index === 0) return null
  return { name: limits[index - 1]!.name, remaining, resetSeconds: Math.ceil(resetMs / 1000) }
}

/** a refused request takes nothing: one more request fits, and the limit frees one interval sooner */
function untakenState (limits: readonly RateLimitSpec[], index: number, remaining: number, resetMs: number): LimitState | null {
  if (index === 0) return null
  const limit = limits[index - 1]!
  return { name: limit.name, remaining: remaining + 1, resetSeconds: Math.max(0, Math.ceil((resetMs - limit.intervalMs) / 1000)) }
}
