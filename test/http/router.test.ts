// The radix router: matching, precedence and backtracking, methods, registration errors.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Router, decodeParam } from '../../src/http/router.js'

/** The admin port's routes (CONTRACT §5): [method, pattern]. */
const ADMIN_ROUTES: Array<[string, string]> = [
  ['GET', '/admin/partners'], ['POST', '/admin/partners'],
  ['GET', '/admin/partners/:slug'], ['PATCH', '/admin/partners/:slug'], ['DELETE', '/admin/partners/:slug'],
  ['GET', '/admin/partners/:slug/credentials'], ['POST', '/admin/partners/:slug/credentials'],
  ['PATCH', '/admin/credentials/:id'], ['DELETE', '/admin/credentials/:id'],
  ['GET', '/admin/policies'], ['POST', '/admin/policies'],
  ['GET', '/admin/policies/:id'], ['PATCH', '/admin/policies/:id'], ['DELETE', '/admin/policies/:id'],
  ['GET', '/admin/bindings'], ['POST', '/admin/bindings'],
  ['DELETE', '/admin/bindings/:id'],
  ['GET', '/admin/keys'], ['POST', '/admin/keys'],
  ['GET', '/admin/keys/:id'], ['PATCH', '/admin/keys/:id'],
  ['POST', '/admin/keys/:id/revoke'], ['POST', '/admin/keys/:id/rotate'],
  ['GET', '/admin/usage'], ['GET', '/admin/audit'], ['GET', '/admin/health'],
  ['GET', '/metrics'],
]

/** The proxy port's routes. */
const PROXY_ROUTES: Array<[string, string]> = [
  ['GET', '/health'], ['GET', '/ready'], ['*', '/proxy/:partner/*'],
]

/** A router whose handlers are their own `METHOD pattern`, so a match says which route won. */
function routerOf (routes: Array<[string, string]>): Router<string> {
  const router = new Router<string>()
  for (const [method, pattern] of routes) router.on(method, pattern, `${method} ${pattern}`)
  return router
}

/** Handler and params as one plain object, for deepEqual. */
function match (router: Router<string>, method: string, path: string): { handler: string, params: Record<string, string> } | null {
  const found = router.find(method, path)
  if (found === null) return null
  assert.equal(found.params.length, found.paramNames.length, 'params and paramNames are parallel')
  const params: Record<string, string> = {}
  for (let i = 0; i < found.params.length; i++) params[found.paramNames[i]] = found.params[i]
  return { handler: found.handler, params }
}

describe('static routes', () => {
  const router = routerOf([...PROXY_ROUTES, ['GET', '/'], ['GET', '/metrics']])

  test('match exactly, with no params', () => {
    assert.deepEqual(match(router, 'GET', '/health'), { handler: 'GET /health', params: {} })
    assert.deepEqual(match(router, 'GET', '/ready'), { handler: 'GET /ready', params: {} })
    assert.deepEqual(match(router, 'GET', '/metrics'), { handler: 'GET /metrics', params: {} })
    assert.deepEqual(match(router, 'GET', '/'), { handler: 'GET /', params: {} })
  })

  test('a prefix or an extension of a static route does not match', () => {
    for (const path of ['/heal', '/healthz', '/health/x', '/readyy', '/metric', '/h', '', 'health']) {
      assert.equal(router.find('GET', path), null, path)
    }
  })

  test('edges split anywhere, even at their last character, keep every route', () => {
    const patterns = ['/abc', '/abd', '/ab', '/a', '/abcd', '/b']
    const router = routerOf(patterns.map((pattern) => ['GET', pattern]))
    for (const pattern of patterns) assert.equal(router.find('GET', pattern)?.handler, `GET ${pattern}`, pattern)
    for (const path of ['/abe', '/abcde', '/ac', '/']) assert.equal(router.find('GET', path), null, path)
  })

  test('a path shorter than the edge being compared does not match', () => {
    assert.equal(router.find('GET', '/r'), null)
    assert.equal(router.find('GET', '/rea'), null)
  })
})

describe('params', () => {
  const router = routerOf(ADMIN_ROUTES)

  test('capture exactly one segment, in pattern order', () => {
    assert.deepEqual(match(router, 'GET', '/admin/partners/acme'), { handler: 'GET /admin/partners/:slug', params: { slug: 'acme' } })
    assert.deepEqual(match(router, 'POST', '/admin/partners/acme/credentials'), {
      handler: 'POST /admin/partners/:slug/credentials', params: { slug: 'acme' },
    })
    const found = router.find('POST', '/admin/keys/key_01/rotate')
    assert.deepEqual(found?.params, ['key_01'])
    assert.deepEqual(found?.paramNames, ['id'])
  })

  test('values stay raw: percent-escapes are not decoded', () => {
    assert.deepEqual(router.find('GET', '/admin/partners/ac%20me')?.params, ['ac%20me'])
    assert.deepEqual(router.find('GET', '/admin/partners/a%2Fb/credentials')?.params, ['a%2Fb'])
  })

  test('an empty segment never matches a param', () => {
    assert.equal(router.find('GET', '/admin/partners//credentials'), null)
    assert.equal(router.find('POST', '/admin/keys//revoke'), null)
    assert.equal(router.find('GET', '/admin/partners/'), null)
  })

  test('paramNames are fixed at registration; params are fresh per match', () => {
    const first = router.find('GET', '/admin/keys/a')
    const second = router.find('GET', '/admin/keys/b')
    assert.ok(first !== null && second !== null)
    assert.equal(first.paramNames, second.paramNames)
    assert.ok(Object.isFrozen(first.paramNames))
    assert.notEqual(first.params, second.params)
    first.params[0] = 'changed'
    assert.deepEqual(router.find('GET', '/admin/keys/a')?.params, ['a'])
  })
})

describe('wildcard', () => {
  const router = routerOf(PROXY_ROUTES)

  test('captures the rest of the path including slashes, named *', () => {
    const found = router.find('GET', '/proxy/acme/resources/applicants/123')
    assert.deepEqual(found?.params, ['acme', 'resources/applicants/123'])
    assert.deepEqual(found?.paramNames, ['partner', '*'])
    assert.equal(found?.handler, '* /proxy/:partner/*')
  })

  test('captures an empty rest after the trailing slash', () => {
    assert.deepEqual(router.find('GET', '/proxy/acme/')?.params, ['acme', ''])
  })

  test('keeps trailing and doubled slashes in the rest', () => {
    assert.deepEqual(router.find('GET', '/proxy/acme/a/b/')?.params, ['acme', 'a/b/'])
    assert.deepEqual(router.find('GET', '/proxy/acme//x')?.params, ['acme', '/x'])
  })

  test('preserves raw percent-encoded values', () => {
    assert.deepEqual(router.find('PUT', '/proxy/ac%2Dme/files/a%2Fb%20c/%zz')?.params, ['ac%2Dme', 'files/a%2Fb%20c/%zz'])
  })

  test('needs the slash before it: the bare prefix does not match', () => {
    assert.equal(router.find('GET', '/proxy/acme'), null)
    assert.equal(router.find('GET', '/proxy/'), null)
    assert.equal(router.find('GET', '/proxy'), null)
    assert.equal(router.find('GET', '/proxy//x'), null)
  })

  test('a root wildcard matches every path', () => {
    const all = routerOf([['GET', '/*']])
    assert.deepEqual(all.find('GET', '/')?.params, [''])
    assert.deepEqual(all.find('GET', '/a/b')?.params, ['a/b'])
  })
})

describe('precedence and backtracking', () => {
  test('static beats param, param beats wildcard', () => {
    const router = routerOf([['GET', '/files/*'], ['GET', '/files/:name'], ['GET', '/files/latest']])
    assert.equal(router.find('GET', '/files/latest')?.handler, 'GET /files/latest')
    assert.equal(router.find('GET', '/files/other')?.handler, 'GET /files/:name')
    assert.deepEqual(match(router, 'GET', '/files/a/b'), { handler: 'GET /files/*', params: { '*': 'a/b' } })
    assert.deepEqual(match(router, 'GET', '/files/'), { handler: 'GET /files/*', params: { '*': '' } })
  })

  test('a static branch that dead-ends falls back to the param', () => {
    const router = routerOf([['GET', '/admin/keys/:id'], ['GET', '/admin/keys/export/all']])
    assert.deepEqual(match(router, 'GET', '/admin/keys/export'), { handler: 'GET /admin/keys/:id', params: { id: 'export' } })
    assert.deepEqual(match(router, 'GET', '/admin/keys/export/all'), { handler: 'GET /admin/keys/export/all', params: {} })
    assert.deepEqual(match(router, 'GET', '/admin/keys/exp'), { handler: 'GET /admin/keys/:id', params: { id: 'exp' } })
    assert.equal(router.find('GET', '/admin/keys/export/al'), null)
  })

  test('a static branch that dead-ends deeper falls back to a param route below it', () => {
    const router = routerOf([['GET', '/admin/keys/export/all'], ['POST', '/admin/keys/:id/revoke']])
    assert.deepEqual(match(router, 'POST', '/admin/keys/export/revoke'), {
      handler: 'POST /admin/keys/:id/revoke', params: { id: 'export' },
    })
  })

  test('a param branch that dead-ends falls back to the wildcard without leaking its value', () => {
    const router = routerOf([['GET', '/a/:id/x'], ['GET', '/a/*']])
    assert.deepEqual(router.find('GET', '/a/1/x')?.params, ['1'])
    assert.deepEqual(router.find('GET', '/a/1/y')?.params, ['1/y'])
    assert.deepEqual(match(router, 'GET', '/a/1'), { handler: 'GET /a/*', params: { '*': '1' } })
  })

  test('nested params backtrack through split edges', () => {
    const router = routerOf([
      ['GET', '/t/:a/static/:b'], ['GET', '/t/:a/:c/end'], ['GET', '/t/static/:b/end'],
    ])
    assert.deepEqual(match(router, 'GET', '/t/1/static/2'), { handler: 'GET /t/:a/static/:b', params: { a: '1', b: '2' } })
    assert.deepEqual(match(router, 'GET', '/t/1/static/end'), { handler: 'GET /t/:a/static/:b', params: { a: '1', b: 'end' } })
    assert.deepEqual(match(router, 'GET', '/t/1/2/end'), { handler: 'GET /t/:a/:c/end', params: { a: '1', c: '2' } })
    assert.deepEqual(match(router, 'GET', '/t/static/2/end'), { handler: 'GET /t/static/:b/end', params: { b: '2' } })
    // `static` is tried as a literal first, dead-ends, then is taken as :a.
    assert.deepEqual(match(router, 'GET', '/t/static/static/9'), { handler: 'GET /t/:a/static/:b', params: { a: 'static', b: '9' } })
    assert.equal(router.find('GET', '/t/1/2/ends'), null)
  })

  test('edges that share a prefix do not match a path that diverges inside the edge', () => {
    const router = routerOf(ADMIN_ROUTES)
    assert.equal(router.find('POST', '/admin/keys/k1/rewoke'), null)
    assert.equal(router.find('POST', '/admin/keys/k1/r'), null)
    assert.equal(router.find('GET', '/admin/polices'), null)
  })
})

describe('methods', () => {
  test('an exact-method route wins over * on the same pattern; * catches the rest', () => {
    const router = routerOf([['*', '/things'], ['GET', '/things']])
    assert.equal(router.find('GET', '/things')?.handler, 'GET /things')
    assert.equal(router.find('POST', '/things')?.handler, '* /things')
    assert.equal(router.find('PROPFIND', '/things')?.handler, '* /things')
  })

  test('a route for another method does not hide a less specific route for this one', () => {
    const router = routerOf([['POST', '/a/b'], ['GET', '/a/:id']])
    assert.deepEqual(match(router, 'GET', '/a/b'), { handler: 'GET /a/:id', params: { id: 'b' } })
    assert.deepEqual(match(router, 'POST', '/a/b'), { handler: 'POST /a/b', params: {} })
    assert.equal(router.find('DELETE', '/a/b'), null)
  })

  test('path specificity comes before method specificity', () => {
    const router = routerOf([['*', '/a/b'], ['GET', '/a/:id']])
    assert.equal(router.find('GET', '/a/b')?.handler, '* /a/b')
  })

  test('methods are case-sensitive, as HTTP says', () => {
    const router = routerOf([['GET', '/health']])
    assert.equal(router.find('get', '/health'), null)
  })

  test('the proxy wildcard answers any method', () => {
    const router = routerOf(PROXY_ROUTES)
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']) {
      assert.equal(router.find(method, '/proxy/acme/x')?.handler, '* /proxy/:partner/*', method)
    }
    assert.equal(router.find('POST', '/health'), null)
  })
})

describe('allowedMethods', () => {
  const router = routerOf(ADMIN_ROUTES)

  test('lists the sorted methods of the matching pattern, for a 405 Allow header', () => {
    assert.equal(router.find('PUT', '/admin/partners/acme'), null)
    assert.deepEqual(router.allowedMethods('/admin/partners/acme'), ['DELETE', 'GET', 'PATCH'])
    assert.deepEqual(router.allowedMethods('/admin/partners'), ['GET', 'POST'])
    assert.deepEqual(router.allowedMethods('/admin/keys/k1'), ['GET', 'PATCH'])
    assert.deepEqual(router.allowedMethods('/admin/keys/k1/revoke'), ['POST'])
    assert.deepEqual(router.allowedMethods('/metrics'), ['GET'])
  })

  test('is empty when no pattern matches (404)', () => {
    for (const path of ['/admin', '/admin/keys/k1/burn', '/admin/partners/', '/admin/partners//credentials', '/health']) {
      assert.deepEqual(router.allowedMethods(path), [], path)
    }
  })

  test('unions every pattern that matches, across static, param and wildcard branches', () => {
    const mixed = routerOf([['POST', '/a/b'], ['GET', '/a/:id'], ['DELETE', '/a/*'], ['PUT', '/a/:id/c']])
    assert.deepEqual(mixed.allowedMethods('/a/b'), ['DELETE', 'GET', 'POST'])
    assert.deepEqual(mixed.allowedMethods('/a/x/c'), ['DELETE', 'PUT'])
    assert.deepEqual(mixed.allowedMethods('/a/'), ['DELETE'])
  })

  test('reports * for an any-method route', () => {
    assert.deepEqual(routerOf(PROXY_ROUTES).allowedMethods('/proxy/acme/x'), ['*'])
  })
})

describe('trailing slash', () => {
  test('is significant in both directions', () => {
    const router = routerOf([['GET', '/health'], ['GET', '/docs/']])
    assert.equal(router.find('GET', '/health/'), null)
    assert.equal(router.find('GET', '/docs'), null)
    assert.equal(router.find('GET', '/docs/')?.handler, 'GET /docs/')
  })

  test('after a param it does not match the param route', () => {
    const router = routerOf(ADMIN_ROUTES)
    assert.equal(router.find('GET', '/admin/keys/k1/'), null)
    assert.equal(router.find('GET', '/admin/keys/'), null)
  })
})

describe('registration errors', () => {
  test('a duplicate method and pattern throws; other methods and * on it do not', () => {
    const router = routerOf([['GET', '/a/:id']])
    assert.throws(() => router.on('GET', '/a/:id', 'again'), /already registered/)
    router.on('POST', '/a/:id', 'post')
    router.on('*', '/a/:id', 'any')
    assert.throws(() => router.on('*', '/a/:id', 'any again'), /already registered/)
  })

  test('different param names at the same position throw', () => {
    const router = routerOf([['GET', '/admin/partners/:slug']])
    assert.throws(() => router.on('POST', '/admin/partners/:id/credentials', 'x'), /':id'.*conflicts with ':slug'/)
    assert.throws(() => router.on('GET', '/admin/partners/:partner', 'x'), /conflicts/)
  })

  test('* anywhere but as the whole last segment throws', () => {
    const router = new Router<string>()
    for (const pattern of ['/a/*/b', '/a*', '/a/b*', '/a/*b', '/*/*']) {
      assert.throws(() => router.on('GET', pattern, 'x'), /'\*' only as its whole last segment/, pattern)
    }
  })

  test('malformed patterns and methods throw with the pattern in the message', () => {
    const router = new Router<string>()
    assert.throws(() => router.on('GET', 'health', 'x'), /'GET health' must start with '\/'/)
    assert.throws(() => router.on('GET', '', 'x'), /must start with/)
    assert.throws(() => router.on('GET', '/a//b', 'x'), /empty segment/)
    assert.throws(() => router.on('GET', '/a?b=1', 'x'), /may not contain/)
    assert.throws(() => router.on('GET', '/a/:', 'x'), /invalid parameter name/)
    assert.throws(() => router.on('GET', '/a/:b-c', 'x'), /invalid parameter name/)
    assert.throws(() => router.on('GET', '/a/:id/b/:id', 'x'), /repeats parameter ':id'/)
    assert.throws(() => router.on('get', '/a', 'x'), /invalid method 'get'/)
    assert.throws(() => router.on('', '/a', 'x'), /invalid method/)
  })

  test('a rejected registration leaves the router matching as before', () => {
    const router = routerOf([['GET', '/admin/partners/:slug']])
    assert.throws(() => router.on('GET', '/admin/partners/:id/x/*/y', 'x'))
    assert.throws(() => router.on('GET', '/admin/partners/new/:a/:a', 'x'))
    assert.equal(router.find('GET', '/admin/partners/new')?.handler, 'GET /admin/partners/:slug')
    assert.equal(router.find('GET', '/admin/partners/acme/x'), null)
    assert.deepEqual(router.allowedMethods('/admin/partners/acme'), ['GET'])
    // The rejected ':a' left no param node behind to conflict with.
    router.on('GET', '/admin/partners/new/:b', 'GET /admin/partners/new/:b')
    assert.deepEqual(router.find('GET', '/admin/partners/new/1')?.params, ['1'])
  })
})

describe('decodeParam', () => {
  test('returns the same string when there is no %', () => {
    const raw = 'acme-corp_01'
    assert.equal(decodeParam(raw), raw)
    assert.equal(decodeParam(''), '')
    assert.equal(decodeParam('a+b'), 'a+b')
  })

  test('decodes percent-escapes, including slashes and UTF-8', () => {
    assert.equal(decodeParam('ac%20me'), 'ac me')
    assert.equal(decodeParam('a%2Fb'), 'a/b')
    assert.equal(decodeParam('caf%C3%A9'), 'café')
  })

  test('returns null for malformed escapes', () => {
    for (const raw of ['%', '%2', 'a%zz', '%E0%A4%A', '%FF', '100%']) assert.equal(decodeParam(raw), null, raw)
  })
})

describe('many routes sharing prefixes', () => {
  const router = routerOf([...ADMIN_ROUTES, ...PROXY_ROUTES])
  const values: Record<string, string> = { slug: 'acme-corp', id: 'id_01HZX' }

  test('every admin route resolves to itself with its params', () => {
    for (const [method, pattern] of ADMIN_ROUTES) {
      const path = pattern.replace(/:(\w+)/g, (_, name: string) => values[name])
      const expected: Record<string, string> = {}
      for (const [, name] of pattern.matchAll(/:(\w+)/g)) expected[name] = values[name]
      assert.deepEqual(match(router, method, path), { handler: `${method} ${pattern}`, params: expected }, `${method} ${path}`)
    }
  })

  test('registration order does not change what matches', () => {
    const reversed = routerOf([...ADMIN_ROUTES].reverse())
    for (const [method, pattern] of ADMIN_ROUTES) {
      const path = pattern.replace(/:(\w+)/g, (_, name: string) => values[name])
      assert.deepEqual(match(reversed, method, path), match(router, method, path), `${method} ${path}`)
    }
  })

  test('the proxy routes still resolve beside the admin routes', () => {
    assert.equal(router.find('GET', '/health')?.handler, 'GET /health')
    assert.equal(router.find('GET', '/admin/health')?.handler, 'GET /admin/health')
    assert.deepEqual(router.find('POST', '/proxy/acme/v1/x')?.params, ['acme', 'v1/x'])
  })

  test('near misses are not found', () => {
    const misses: Array<[string, string]> = [
      ['GET', '/admin'], ['GET', '/admin/'], ['GET', '/admin/partner'], ['GET', '/admin/partnersx'],
      ['GET', '/admin/partners/acme/credential'], ['GET', '/admin/partners/acme/credentials/x'],
      ['POST', '/admin/keys/k1/revoke/x'], ['GET', '/admin/keys/k1/revoke'], ['PUT', '/admin/keys'],
      ['GET', '/admin/credentials/c1'], ['GET', '/admin/usages'], ['GET', '/Admin/keys'],
      ['GET', '/metrics/'], ['GET', '/nope'], ['GET', '/'], ['GET', ''],
    ]
    for (const [method, path] of misses) assert.equal(router.find(method, path), null, `${method} ${path}`)
  })
})
