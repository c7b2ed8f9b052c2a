// The per-attempt rules of partner retries: which requests may be sent twice, how long to wait,
// and what an upstream's Retry-After asks for. Pure functions; the exchange applies them.

/** RFC 9110 §9.2.2: sending these twice has the effect of sending them once */
export function isIdempotentMethod (method: string): boolean {
  switch (method) {
    case 'GET': case 'HEAD': case 'OPTIONS': case 'TRACE': case 'PUT': case 'DELETE':
      return true
    default:
      return false
  }
}

/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"): a uniform draw in [0, min(max, base·2^(retry-1))), so clients retrying the same
 * outage spread out instead of arriving in waves. `retry` counts from 1.
 */
export function fullJitterDelayMs (retry: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** (retry - 1))
  return Math.floor(Math.random() * ceiling)
}

/**
 * The delay an upstream's Retry-After header asks for, in ms from `nowMs` (epoch), or -1 when
 * the header is absent or unreadable. Accepts delta-seconds and an HTTP-date (RFC 9110 §10.2.3).
 * `rawHeaders` is undici's flat [name, value, …] Buffer list.
 */
export function retryAfterMs (rawHeaders: readonly Buffer[], nowMs: number): number {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    if (name.length !== 11 || name.toString('latin1').toLowerCase() !== 'retry-after') continue
    return parseRetryAfter(rawHeaders[i + 1]!.toString('latin1').trim(), nowMs)
  }
  return -1
}

export function parseRetryAfter (value: string, nowMs: number): number {
  if (/^\d+$/.test(value)) return Number(value) * 1000
  // an HTTP-date names its day and month; Date.parse alone would take '-1' or '1.5' as dates
  if (!/[A-Za-z]{3}/.test(value)) return -1
  const date = Date.parse(value)
  if (Number.isNaN(date)) return -1
  return Math.max(0, date - nowMs)
}
