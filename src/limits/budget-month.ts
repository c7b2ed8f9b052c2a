// Budgets reset at 00:00 UTC on the 1st: the month a cost lands in, and how long until the next.

/** '2026-11' for any instant in November 2026 (UTC) */
export function budgetMonth (epochMs: number): string {
  const d = new Date(epochMs)
  const month = d.getUTCMonth() + 1
  return `${d.getUTCFullYear()}-${month < 10 ? '0' : ''}${month}`
}

/** whole seconds (at least 1) until 00:00 UTC on the 1st of the next month */
export function secondsToNextMonth (epochMs: number): number {
  const d = new Date(epochMs)
  const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)
  return Math.max(1, Math.ceil((next - epochMs) / 1000))
}
