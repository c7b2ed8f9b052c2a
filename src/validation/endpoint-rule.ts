// The method and path of an endpoint rule, shared by policy `costs`, `allow` and `payment.prices`.
// The shapes checked here are the ones http/endpoint-pattern.ts compiles, so a stored rule
// always compiles.
import { ValidationError } from '../errors.js'
import { matching, string } from './json-value.js'

const METHOD = /^(?:\*|[A-Z][A-Z0-9_-]{0,31})$/
const PATH_FORBIDDEN = /[?#\s\u0000-\u001f\u007f]/

/** an uppercase HTTP method, or '*' for any */
export function endpointMethod (value: unknown, field: string): string {
  return matching(value, field, METHOD, "an uppercase HTTP method such as GET, or '*'")
}

/** `/a/*\/b` and a trailing `/**`; see http/endpoint-pattern.ts */
export function endpointPath (value: unknown, field: string): string {
  const path = string(value, field, 1024)
  if (!path.startsWith('/')) throw new ValidationError(field, "must start with '/'")
  if (PATH_FORBIDDEN.test(path)) throw new ValidationError(field, 'must not contain a query, a fragment, whitespace or control characters')
  const segments = path.split('/')
  for (let s = 1; s < segments.length; s++) {
    const segment = segments[s]
    if (segment === '' && s < segments.length - 1) throw new ValidationError(field, 'must not contain an empty segment (//)')
    if (segment === '**') {
      if (s !== segments.length - 1) throw new ValidationError(field, "may use '/**' only at the end")
    } else if (segment.includes('*') && segment !== '*') {
      throw new ValidationError(field, "may use '*' only as a whole segment")
    }
  }
  return path
}
