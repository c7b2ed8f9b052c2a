// TRACE and TRACK are never forwarded: a partner that echoes TRACE (Apache's default) would send
// the request back as it received it — with the credential RelayKey injected — to the client.
// They are refused with 405 before the key is even looked at, so they spend no limit.

/** what a 405's Allow header lists: every method RelayKey forwards */
export const PROXY_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'

/** true for TRACE and TRACK (node:http hands over methods in upper case) */
export function isTraceMethod (method: string): boolean {
  return method === 'TRACE' || method === 'TRACK'
}

export function traceRefusal (method: string): string {
  return `${method} is never forwarded: a partner echoing it would hand the injected credential back`
}
