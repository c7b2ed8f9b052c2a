// `RateLimit-Policy` and `RateLimit` (IETF httpapi rate-limit headers draft, structured-field
// form): `RateLimit-Policy: "key";q=100;w=60` and `RateLimit: "key";r=42;t=12`.
import type { LimitState } from './admission.js'

/** HOT PATH: appends both headers to a flat header array when a rate limit applies. */
export function pushRateLimitHeaders (out: string[], policyHeader: string | null, state: LimitState | null): void {
  if (policyHeader === null) return
  out.push('ratelimit-policy', policyHeader)
  if (state !== null) out.push('ratelimit', `"${state.name}";r=${state.remaining};t=${state.resetSeconds}`)
}
