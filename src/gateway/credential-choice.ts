// Which credential a request goes to: the weighted round-robin's pick while its breaker lets
// requests through, else the next one that does; for vendor quotas, the order to try them in.
import type { CredentialCandidate } from '../limits/admission.js'
import type { CredentialOrder, CredentialRoute, UpstreamTarget } from './key-context.js'

/** the weighted round-robin's pick, or the next credential whose breaker lets requests through */
export function usableCredential (upstream: UpstreamTarget, now: number): CredentialRoute | null {
  const first = upstream.credentials.next()!
  return first.breaker.blocks(now) ? usableAfter(upstream.routes, first, now) : first
}

/** the first credential after `current`, in index order, whose breaker lets requests through */
export function usableAfter (routes: readonly CredentialRoute[], current: CredentialRoute, now: number): CredentialRoute | null {
  for (let i = 1; i < routes.length; i++) {
    const route = routes[(current.index + i) % routes.length]!
    if (!route.breaker.blocks(now)) return route
  }
  return null
}

/**
 * A quota order without the credentials whose breaker is open, nor those in `used` (the same
 * object when none is dropped).
 */
export function usableOrder (order: CredentialOrder, now: number, used: readonly string[] = NO_IDS): CredentialOrder {
  const routes = order.routes
  let dropped = 0
  for (let i = 0; i < routes.length; i++) if (!usable(routes[i]!, now, used)) dropped++
  if (dropped === 0) return order
  const kept: CredentialRoute[] = []
  const candidates: CredentialCandidate[] = []
  for (let i = 0; i < routes.length; i++) {
    if (!usable(routes[i]!, now, used)) continue
    kept.push(routes[i]!)
    candidates.push(order.candidates[i]!)
  }
  return { routes: kept, candidates }
}

const NO_IDS: readonly string[] = Object.freeze([])

function usable (route: CredentialRoute, now: number, used: readonly string[]): boolean {
  return !route.breaker.blocks(now) && !used.includes(route.id)
}

export function soonestRetryMs (routes: readonly CredentialRoute[], now: number): number {
  let soonest = Infinity
  for (const route of routes) soonest = Math.min(soonest, route.breaker.retryAfterMs(now))
  return soonest
}
