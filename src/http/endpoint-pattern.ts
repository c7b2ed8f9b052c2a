// Endpoint rules (`allow`, `costs`): a method and a path pattern where `*` is one segment and
// a trailing `/**` is any rest. Compiled once per policy into segment arrays; matching walks
// the request path with indexes and builds no strings or RegExps.
//
//   pattern "/resources/*/checks/**" → segments ["resources", STAR, "checks"], rest: true
//   path    "/resources/42/checks/a/b" → matches

const STAR = '\u0000*'

export interface CompiledEndpoint {
  /** uppercase method or '*' */
  readonly method: string
  readonly segments: readonly string[]
  /** pattern ended in `/**`: any rest (including none) after the segments */
  readonly rest: boolean
}

export function compileEndpoint (method: string, pattern: string): CompiledEndpoint {
  let path = pattern
  let rest = false
  if (path === '/**') return Object.freeze({ method, segments: Object.freeze([]), rest: true })
  if (path.endsWith('/**')) {
    rest = true
    path = path.slice(0, -3)
  }
  const segments = path.split('/').slice(1).map((s) => (s === '*' ? STAR : s))
  return Object.freeze({ method, segments: Object.freeze(segments), rest })
}

/**
 * HOT PATH: does `path` (starting with '/', no query, decoded) match? Compares each segment in
 * place with startsWith at an offset instead of splitting the path.
 */
export function matchEndpoint (rule: CompiledEndpoint, method: string, path: string): boolean {
  if (rule.method !== '*' && rule.method !== method) return false
  const segments = rule.segments
  let pos = 0 // index of the '/' before the next segment
  for (let i = 0; i < segments.length; i++) {
    if (pos >= path.length || path.charCodeAt(pos) !== 47 /* / */) return false
    const start = pos + 1
    let end = path.indexOf('/', start)
    if (end === -1) end = path.length
    const segment = segments[i]!
    if (segment === STAR) {
      if (end === start) return false
    } else if (end - start !== segment.length || !path.startsWith(segment, start)) {
      return false
    }
    pos = end
  }
  if (pos === path.length) return true
  return rule.rest
}

/** index of the first matching rule, or -1 */
export function findEndpoint (rules: readonly CompiledEndpoint[], method: string, path: string): number {
  for (let i = 0; i < rules.length; i++) {
    if (matchEndpoint(rules[i]!, method, path)) return i
  }
  return -1
}
