// Radix-tree router for the proxy and admin ports: patterns are compiled into the tree at
// registration, so `find` only walks the path with `charCodeAt` (after find-my-way).
//
// Tree for GET /health, * /proxy/:partner/*, GET /admin/keys/:id, GET /admin/keys/export/all,
// POST /admin/keys/:id/revoke and POST /admin/keys/:id/rotate (edges are compressed prefixes):
//
//   ''                                  root
//   └─ '/'
//      ├─ 'health'                      GET
//      ├─ 'proxy/' ── :partner
//      │               └─ '/' ── *      *            wildcard: rest of the path, may be empty
//      └─ 'admin/keys/'
//           ├─ 'export/all'             GET          static children are tried first,
//           └─ :id                      GET          then the param, then the wildcard;
//               └─ '/r'                              a dead end backtracks to the next kind
//                   ├─ 'evoke'          POST
//                   └─ 'otate'          POST
//
// A node holds at most one static child per first character (so the walk never scans two), one
// param child and one wildcard child; routes hang off the node where their pattern ends.

const SLASH = 47 // '/'
const COLON = 58 // ':'
const METHOD = /^(?:\*|[A-Z][A-Z-]*)$/
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export interface RouteMatch<H> {
  handler: H
  /** Raw (still percent-encoded) values in pattern order; see `decodeParam`. */
  params: string[]
  /** Names fixed at registration, parallel to `params`; the wildcard is named `'*'`. */
  paramNames: readonly string[]
}

interface Route<H> {
  handler: H
  paramNames: readonly string[]
}

class Node<H> {
  prefix: string
  staticCodes: number[]
  staticChildren: Array<Node<H>>
  param: Node<H> | null
  paramName: string
  wildcard: Node<H> | null
  routes: Map<string, Route<H>>
  any: Route<H> | null

  constructor (prefix: string, paramName: string) {
    this.prefix = prefix
    this.staticCodes = []
    this.staticChildren = []
    this.param = null
    this.paramName = paramName
    this.wildcard = null
    this.routes = new Map()
    this.any = null
  }
}

export class Router<H> {
  #root: Node<H>

  constructor () {
    this.#root = new Node('', '')
  }

  /** Registers `handler` for `method` (uppercase, or `'*'` for any) on `pattern`; throws on a bad or clashing pattern. */
  on (method: string, pattern: string, handler: H): void {
    const where = `${method} ${pattern}`
    // Parse (and reject) the whole pattern before touching the tree, so a bad one leaves no trace.
    const tokens = parsePattern(where, method, pattern)
    const paramNames: string[] = []
    let node = this.#root
    for (const token of tokens) {
      if (token === '*') {
        if (node.wildcard === null) node.wildcard = new Node('', '*')
        node = node.wildcard
        paramNames.push('*')
      } else if (token.charCodeAt(0) === COLON) {
        const name = token.slice(1)
        if (node.param === null) node.param = new Node('', name)
        else if (node.param.paramName !== name) {
          throw new Error(`router: ':${name}' in '${where}' conflicts with ':${node.param.paramName}' registered at the same position`)
        }
        node = node.param
        paramNames.push(name)
      } else {
        node = insertStatic(node, token)
      }
    }

    const existing = method === '*' ? node.any : node.routes.get(method)
    if (existing != null) throw new Error(`router: '${where}' is already registered`)
    const route: Route<H> = { handler, paramNames: Object.freeze(paramNames) }
    if (method === '*') node.any = route
    else node.routes.set(method, route)
  }

  /** The best route for `method` on `path` (the URL path, query string already cut off), or null. */
  find (method: string, path: string): RouteMatch<H> | null {
    // HOT PATH: one params array and one result object per match; everything else was built in `on`.
    const params: string[] = []
    const route = matchFrom(this.#root, method, path, 0, params)
    if (route === null) return null
    return { handler: route.handler, params, paramNames: route.paramNames }
  }

  /**
   * Every method registered on a pattern that matches `path`, sorted, for a 405's Allow header;
   * empty means 404. A `'*'` route contributes `'*'` (but then `find` never returns null).
   */
  allowedMethods (path: string): string[] {
    const methods = new Set<string>()
    collectFrom(this.#root, path, 0, methods)
    return Array.from(methods).sort()
  }
}

/** Percent-decodes a raw param value; only pays when a `%` is present. Null for malformed escapes. */
export function decodeParam (value: string): string | null {
  if (value.indexOf('%') === -1) return value
  try {
    return decodeURIComponent(value)
  } catch {
    return null
  }
}

// Splits a pattern into static text (starting with '/'), ':name' and '*' tokens, e.g.
// '/proxy/:partner/*' -> ['/proxy/', ':partner', '/', '*'], validating it on the way.
function parsePattern (where: string, method: string, pattern: string): string[] {
  if (!METHOD.test(method)) throw new TypeError(`router: invalid method '${method}' for '${pattern}'`)
  if (pattern.charCodeAt(0) !== SLASH) throw new TypeError(`router: '${where}' must start with '/'`)
  if (/[?#\s]/.test(pattern)) throw new TypeError(`router: '${where}' may not contain '?', '#' or whitespace`)
  if (pattern.includes('//')) throw new TypeError(`router: '${where}' has an empty segment`)
  const segments = pattern.split('/')
  const tokens: string[] = []
  const names = new Set<string>()
  let text = ''
  for (let s = 1; s < segments.length; s++) {
    const segment = segments[s]
    text += '/'
    if (segment.charCodeAt(0) === COLON) {
      const name = segment.slice(1)
      if (!PARAM_NAME.test(name)) throw new TypeError(`router: '${where}' has an invalid parameter name ':${name}'`)
      if (names.has(name)) throw new TypeError(`router: '${where}' repeats parameter ':${name}'`)
      names.add(name)
      tokens.push(text, segment)
      text = ''
    } else if (segment.includes('*')) {
      if (segment !== '*' || s !== segments.length - 1) {
        throw new TypeError(`router: '${where}' may use '*' only as its whole last segment`)
      }
      tokens.push(text, '*')
      text = ''
    } else {
      text += segment
    }
  }
  if (text !== '') tokens.push(text)
  return tokens
}

// Walks down from `parent`, splitting a compressed edge where `text` diverges from it, and returns
// the node at which `text` ends.
function insertStatic<H> (parent: Node<H>, text: string): Node<H> {
  if (text === '') return parent
  const index = parent.staticCodes.indexOf(text.charCodeAt(0))
  if (index === -1) {
    const child = new Node<H>(text, '')
    parent.staticCodes.push(text.charCodeAt(0))
    parent.staticChildren.push(child)
    return child
  }
  let child = parent.staticChildren[index]
  const prefix = child.prefix
  let common = 1
  while (common < prefix.length && common < text.length && prefix.charCodeAt(common) === text.charCodeAt(common)) common++
  if (common < prefix.length) {
    const split = new Node<H>(prefix.slice(0, common), '')
    child.prefix = prefix.slice(common)
    split.staticCodes.push(child.prefix.charCodeAt(0))
    split.staticChildren.push(child)
    parent.staticChildren[index] = split
    child = split
  }
  return insertStatic(child, text.slice(common))
}

// HOT PATH: a plain module-level function (no methods, no callbacks) that V8 optimises as one
// unit. Static edges first, then the param, then the wildcard; `params` is pushed on the way down
// and popped when a branch dead-ends, so backtracking allocates nothing and the only strings made
// are the param values. (A loop for static-only descents measured no faster; recursion reads better.)
function matchFrom<H> (node: Node<H>, method: string, path: string, i: number, params: string[]): Route<H> | null {
  const len = path.length
  if (i === len) {
    const route = node.routes.get(method) ?? node.any
    if (route !== null) return route
    const wildcard = node.wildcard
    if (wildcard === null) return null
    const rest = wildcard.routes.get(method) ?? wildcard.any
    if (rest !== null) params.push('')
    return rest
  }

  const code = path.charCodeAt(i)
  const codes = node.staticCodes
  for (let c = 0; c < codes.length; c++) {
    if (codes[c] !== code) continue
    // HOT PATH: compare the compressed edge char by char instead of slicing the path; the first
    // character already matched in `codes`, and there is one child per first character.
    const child = node.staticChildren[c]
    const prefix = child.prefix
    const end = i + prefix.length
    if (end > len) break
    let k = 1
    while (k < prefix.length && path.charCodeAt(i + k) === prefix.charCodeAt(k)) k++
    if (k === prefix.length) {
      const route = matchFrom(child, method, path, end, params)
      if (route !== null) return route
    }
    break
  }

  const param = node.param
  if (param !== null && code !== SLASH) { // a param is never empty, so `//` never matches one
    let j = i + 1
    while (j < len && path.charCodeAt(j) !== SLASH) j++
    params.push(path.slice(i, j))
    const route = matchFrom(param, method, path, j, params)
    if (route !== null) return route
    params.pop()
  }

  const wildcard = node.wildcard
  if (wildcard === null) return null
  const rest = wildcard.routes.get(method) ?? wildcard.any
  if (rest !== null) params.push(path.slice(i))
  return rest
}

// Same walk as `matchFrom` but visits every matching branch and ignores the method; not hot.
function collectFrom<H> (node: Node<H>, path: string, i: number, methods: Set<string>): void {
  const len = path.length
  if (i === len) addMethods(node, methods)
  if (node.wildcard !== null) addMethods(node.wildcard, methods)
  if (i === len) return

  const code = path.charCodeAt(i)
  const index = node.staticCodes.indexOf(code)
  if (index !== -1) {
    const child = node.staticChildren[index]
    if (path.startsWith(child.prefix, i)) collectFrom(child, path, i + child.prefix.length, methods)
  }
  if (node.param !== null && code !== SLASH) {
    const slash = path.indexOf('/', i)
    collectFrom(node.param, path, slash === -1 ? len : slash, methods)
  }
}

function addMethods<H> (node: Node<H>, methods: Set<string>): void {
  for (const method of node.routes.keys()) methods.add(method)
  if (node.any !== null) methods.add('*')
}
