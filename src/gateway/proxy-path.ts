// Path safety for `/proxy/{partner}/{*path}`. The upstream URL is the partner's base path +
// '/' + the client's path; it stays under the base path because the client's path may not
// contain anything an upstream could normalise into a step upwards or sideways:
//   - no '.' or '..' segment, also not spelled %2e
//   - no empty segment (`//evil.example` would read as an authority to some servers)
//   - no backslash, no %2F or %5C (encoded separators), no %00, no control characters
//   - no ';', raw or %3B (path parameters: '..;' is '..' to Tomcat and Spring)
//   - no raw '#' (a URL parser cuts the path there, and '..#' resolves as '..')
// The origin never comes from the client at all: the Pool is chosen by the partner.

export interface CheckedPath {
  /** the client's path as given (still percent-encoded), without the leading '/' */
  raw: string
  /** '/' + the decoded path, for matching `allow` and `costs` rules */
  match: string
}

/** HOT PATH: one pass over the characters; decodes only when a '%' was seen. */
export function checkProxyPath (rest: string): CheckedPath | null {
  let sawPercent = false
  let segmentStart = 0
  let dots = 0 // '.' characters in the current segment, or -1 once it has anything else
  for (let i = 0; i <= rest.length; i++) {
    const c = i === rest.length ? 47 : rest.charCodeAt(i)
    if (c === 47 /* / */) {
      const length = i - segmentStart
      if (length === 0 && i !== rest.length) return null // empty segment ('//')
      if (dots === 1 || dots === 2) return null // '.' or '..'
      segmentStart = i + 1
      dots = 0
      continue
    }
    // ';' starts path parameters some servers strip before resolving ('..;/' is '../' to Tomcat)
    if (c <= 32 || c >= 127 || c === 92 /* \ */ || c === 59 /* ; */ || c === 35 /* # */) return null
    if (c === 37 /* % */) {
      const hi = hex(rest.charCodeAt(i + 1))
      const lo = hex(rest.charCodeAt(i + 2))
      if (hi < 0 || lo < 0) return null
      const byte = hi * 16 + lo
      if (byte === 0x2f || byte === 0x5c || byte === 0x3b || byte === 0) return null
      sawPercent = true
      i += 2
      dots = byte === 0x2e && dots >= 0 ? dots + 1 : -1
      continue
    }
    dots = c === 46 /* . */ && dots >= 0 ? dots + 1 : -1
  }
  // '' (a request for the base path itself) is fine: the loop saw one final, empty segment
  if (!sawPercent) return { raw: rest, match: '/' + rest }
  let decoded: string
  try {
    decoded = decodeURIComponent(rest)
  } catch {
    return null // not UTF-8
  }
  return { raw: rest, match: '/' + decoded }
}

function hex (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 65 && c <= 70) return c - 55
  if (c >= 97 && c <= 102) return c - 87
  return -1
}

/**
 * Removes every pair that an upstream could read as the `name` parameter from a query string
 * (without its '?'): the name in any letter case, percent-encoded or not, with an array suffix
 * (`name[]`, `name[x]`), and with `;` taken as a separator as some servers do. Used for
 * query-parameter auth, so that the client can neither supply nor shadow the credential.
 */
export function withoutQueryParam (query: string, name: string): string {
  if (query === '') return query
  const wanted = name.toLowerCase()
  // separators are kept in the split so the surviving pairs are joined back as they were
  const parts = query.split(/([&;])/)
  let out = ''
  for (let i = 0; i < parts.length; i += 2) {
    const pair = parts[i]!
    const eq = pair.indexOf('=')
    let key = eq === -1 ? pair : pair.slice(0, eq)
    try {
      key = decodeURIComponent(key.replace(/\+/g, ' '))
    } catch {}
    const bracket = key.indexOf('[')
    if ((bracket === -1 ? key : key.slice(0, bracket)).toLowerCase() === wanted) continue
    if (out !== '') out += i === 0 ? '&' : parts[i - 1]!
    out += pair
  }
  return out
}
