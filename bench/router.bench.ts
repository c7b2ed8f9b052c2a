// Router.find on the two ports' real route tables, beside the naive alternative (one compiled
// RegExp per route, tried in order). Run: npm run bench:router
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { Bench, type FnReturnedObject } from 'tinybench'
import { Router } from '../src/http/router.js'

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
const PROXY_ROUTES: Array<[string, string]> = [['GET', '/health'], ['GET', '/ready'], ['*', '/proxy/:partner/*']]

/** [case name, port's routes, method, path (query string already cut off), expected handler or null]. */
const CASES: Array<[string, Array<[string, string]>, string, string, string | null]> = [
  ['static  GET /health', PROXY_ROUTES, 'GET', '/health', 'GET /health'],
  ['proxy   GET /proxy/acme/resources/applicants/123', PROXY_ROUTES, 'GET', '/proxy/acme/resources/applicants/123', '* /proxy/:partner/*'],
  ['admin   GET /admin/partners/acme/credentials', ADMIN_ROUTES, 'GET', '/admin/partners/acme/credentials', 'GET /admin/partners/:slug/credentials'],
  ['admin   POST /admin/keys/key_01HZX/revoke', ADMIN_ROUTES, 'POST', '/admin/keys/key_01HZX/revoke', 'POST /admin/keys/:id/revoke'],
  ['admin   PATCH /admin/policies/pol_7', ADMIN_ROUTES, 'PATCH', '/admin/policies/pol_7', 'PATCH /admin/policies/:id'],
  ['miss    GET /admin/partners/acme/secrets', ADMIN_ROUTES, 'GET', '/admin/partners/acme/secrets', null],
  ['miss    GET /wp-login.php', PROXY_ROUTES, 'GET', '/wp-login.php', null],
]

function radixOf (routes: Array<[string, string]>): Router<string> {
  const router = new Router<string>()
  for (const [method, pattern] of routes) router.on(method, pattern, `${method} ${pattern}`)
  return router
}

interface RegExpRoute { method: string, regexp: RegExp, handler: string }

/** The baseline: what a router without a tree does, with its RegExps at least compiled up front. */
function regexpsOf (routes: Array<[string, string]>): RegExpRoute[] {
  return routes.map(([method, pattern]) => ({
    method,
    regexp: new RegExp('^' + pattern.replace(/:\w+/g, '([^/]+)').replace(/\*$/, '(.*)') + '$'),
    handler: `${method} ${pattern}`,
  }))
}

function findByRegExp (routes: RegExpRoute[], method: string, path: string): { handler: string, params: string[] } | null {
  for (let r = 0; r < routes.length; r++) {
    const route = routes[r]
    if (route.method !== method && route.method !== '*') continue
    const m = route.regexp.exec(path)
    if (m !== null) return { handler: route.handler, params: m.slice(1) }
  }
  return null
}

// One find takes tens of nanoseconds, about what reading the clock costs, so each sample times a
// batch and reports the per-find duration; the batch's real cost still drives the time budget.
const BATCH = 1000
// Keeps every result alive so the JIT cannot drop the call being measured.
let sink = 0

function perFind (elapsed: number): FnReturnedObject {
  return { overriddenDuration: elapsed / BATCH, overriddenIterationCost: elapsed }
}

const bench = new Bench({ time: 500 })
for (const [name, routes, method, path, expected] of CASES) {
  const radix = radixOf(routes)
  const regexps = regexpsOf(routes)
  assert.equal(radix.find(method, path)?.handler ?? null, expected, name)
  assert.equal(findByRegExp(regexps, method, path)?.handler ?? null, expected, name)
  bench.add(`radix   ${name}`, () => {
    const start = performance.now()
    for (let n = 0; n < BATCH; n++) sink += radix.find(method, path) === null ? 0 : 1
    return perFind(performance.now() - start)
  })
  bench.add(`regexp  ${name}`, () => {
    const start = performance.now()
    for (let n = 0; n < BATCH; n++) sink += findByRegExp(regexps, method, path) === null ? 0 : 1
    return perFind(performance.now() - start)
  })
}

await bench.run()
console.table(bench.table())
if (sink < 0) console.log(sink)
