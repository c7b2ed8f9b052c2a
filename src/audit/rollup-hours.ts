// Audit list filters on customer or partner, without a key: the audit table has no index for
// them (each would cost every stored event a few µs: docs/benchmarks.md), so the hourly usage
// rollups say which hours hold matching events, newest first, and only those hours' events are
// read, a step of hours at a time until the page is full. A key's filter has its own index, and
// so has a refusal code (outcome other than 'forwarded'), which is rarer than any hour.
import type { AuditCursor, AuditFilter } from './audit-query.js'

export const HOUR_MS = 3_600_000
/** hours looked up per step */
export const HOURS_PER_STEP = 24

export function listsByHours (filter: AuditFilter): boolean {
  return filter.key_id === null && (filter.customer !== null || filter.partner !== null) &&
    (filter.outcome === null || filter.outcome === 'forwarded')
}

/** hours before this (epoch ms) can hold the events asked for: `to`, or the cursor's hour's end */
export function hoursBelow (filter: AuditFilter, before: AuditCursor | null): number {
  let below = filter.to === null ? Infinity : filter.to.getTime()
  if (before !== null) below = Math.min(below, Math.floor(before.ts.getTime() / HOUR_MS) * HOUR_MS + HOUR_MS)
  return below
}

/** hours from this on (epoch ms) can hold events at or after `from` */
export function hoursFrom (filter: AuditFilter): number {
  return filter.from === null ? -Infinity : floorHour(filter.from.getTime())
}

/** the start of the hour `ms` is in */
export function floorHour (ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS
}
