// The admin API's OpenAPI document (src/admin/openapi.json): valid OpenAPI 3.1 per a real
// validator, every schema compiles as JSON Schema 2020-12, it lists exactly the routes the admin
// server registers, GET /admin/openapi.json serves it behind the token, and the exchange check
// every admin call of the suite goes through (test/helpers/openapi-check.ts) has teeth.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import { Validator } from '@seriousme/openapi-schema-validator'
import { createAdminServer } from '../../src/admin/admin-server.js'
import { foldUsage } from '../../src/audit/audit-query.js'
import { Router } from '../../src/http/router.js'
import { VirtualKeyCodec } from '../../src/keys/virtual-key.js'
import type { ControlStore } from '../../src/store/control-store.js'
import { adminOpenApi, checkAdminExchange, OPENAPI_FILE } from '../helpers/openapi-check.js'
import { assertError, partnerBody, startAdmin, TOKEN, type AdminHarness } from './admin-harness.js'

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

const usage = {
  audit: { usage: async () => foldUsage([]), list: async () => [], close: async () => {} },
  budgets: { budgetUsed: async () => 0 },
}

/** `METHOD /path/{param}` for every route the admin server registers, asked of the running code */
function registeredRoutes (): string[] {
  const routes: string[] = []
  const on = Router.prototype.on
  Router.prototype.on = function (this: Router<unknown>, method: string, pattern: string, handler: unknown): void {
    routes.push(`${method} ${pattern.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}')}`)
    on.call(this, method, pattern, handler)
  }
  try {
    // metrics, readiness and usage given, so every optional route is registered too
    createAdminServer({
      store: {} as ControlStore,
      codec: new VirtualKeyCodec(Buffer.alloc(32, 1)),
      cipher: null,
      invalidations: { publish () {} },
      tokens: [{ name: 'admin', token: TOKEN, scope: 'write' }],
      logger: pino({ level: 'silent' }),
      metrics: async () => '',
      readiness: async () => ({ status: 'ready', stores: {}, checked_at: null, check_error: null, misconfigurations: [] }),
      usage,
    })
  } finally {
    Router.prototype.on = on
  }
  return routes.sort()
}

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1 per @seriousme/openapi-schema-validator', async () => {
    const document = JSON.parse(await readFile(OPENAPI_FILE, 'utf8'))
    const validator = new Validator()
    const result = await validator.validate(document)
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2))
    assert.equal(validator.version, '3.1')
    assert.match(String(document.openapi), /^3\.1\.\d+$/)
  })

  it('has schemas that all compile as JSON Schema 2020-12 (Ajv, strict), and only local refs that resolve', () => {
    const names = adminOpenApi().compileAll()
    assert.ok(names.length > 50, `${names.length} schemas`)
    const refs: string[] = []
    const walk = (value: unknown): void => {
      if (value === null || typeof value !== 'object') return
      for (const [key, child] of Object.entries(value)) {
        if (key === '$ref') refs.push(String(child))
        else walk(child)
      }
    }
    const document = adminOpenApi().document
    walk(document)
    for (const ref of refs) {
      assert.match(ref, /^#\//, ref)
      let target: any = document
      for (const part of ref.slice(2).split('/')) target = target?.[part]
      assert.notEqual(target, undefined, `${ref} points at nothing`)
    }
  })

  it('describes exactly the routes the admin server registers', () => {
    const registered = registeredRoutes()
    assert.ok(registered.length >= 20, registered.join('\n'))
    assert.deepEqual(adminOpenApi().operations(), registered)
  })

  it('gives every operation an operationId, a tag, bearer auth (global), a 401 and the error envelope on every error status', () => {
    const document = adminOpenApi().document
    assert.deepEqual(document.security, [{ bearerAuth: [] }])
    assert.equal(document.components.securitySchemes.bearerAuth.type, 'http')
    assert.equal(document.components.securitySchemes.bearerAuth.scheme, 'bearer')
    const ids = new Set<string>()
    for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, any>>)) {
      for (const method of HTTP_METHODS) {
        const operation = item[method]
        if (operation === undefined) continue
        const where = `${method.toUpperCase()} ${path}`
        assert.equal(typeof operation.operationId, 'string', where)
        assert.ok(!ids.has(operation.operationId), `${where}: operationId ${operation.operationId} repeats`)
        ids.add(operation.operationId)
        assert.ok(Array.isArray(operation.tags) && operation.tags.length === 1, where)
        assert.equal(operation.security, undefined, `${where} must not override the global bearer auth`)
        assert.deepEqual(operation.responses['401'], { $ref: '#/components/responses/Unauthorized' }, where)
        for (const [status, response] of Object.entries(operation.responses as Record<string, any>)) {
          if (Number(status) < 400) continue
          // a readiness probe's 503 is its report (which store did not answer), not a refusal
          if (where === 'GET /ready' && status === '503') continue
          assert.match(String(response.$ref), /^#\/components\/responses\//, `${where} ${status}`)
          const schema = document.components.responses[response.$ref.split('/').at(-1)].content['application/json'].schema
          assert.deepEqual(document.components.schemas[schema.$ref.split('/').at(-1)].allOf, [{ $ref: '#/components/schemas/Error' }], `${where} ${status}`)
        }
      }
    }
  })
})

describe('GET /admin/openapi.json', () => {
  let admin: AdminHarness
  before(async () => { admin = await startAdmin({ metrics: async () => '# metrics\n', usage }) })
  after(async () => { await admin.close() })

  it('needs the admin token (401 without it)', async () => {
    assertError(await admin.call('GET', '/admin/openapi.json', undefined, { authorization: null }), 401, 'unauthorized')
    assertError(await admin.call('GET', '/admin/openapi.json', undefined, { authorization: 'Bearer wrong-token-0123456789' }), 401, 'unauthorized')
  })

  it('serves the document kept in the repository, as application/json', async () => {
    const reply = await admin.call('GET', '/admin/openapi.json')
    assert.equal(reply.status, 200, reply.text)
    assert.match(String(reply.headers['content-type']), /^application\/json/)
    assert.equal(reply.headers['cache-control'], 'no-store')
    assert.deepEqual(reply.json, JSON.parse(await readFile(OPENAPI_FILE, 'utf8')))
    // and again, from the copy read once
    assert.deepEqual((await admin.call('GET', '/admin/openapi.json')).json, reply.json)
  })

  it('takes no other method', async () => {
    assertError(await admin.call('POST', '/admin/openapi.json', {}), 405, 'method_not_allowed')
  })

  it('answers every documented operation with its route, not with 404 no such route or 405', async () => {
    for (const operation of adminOpenApi().operations()) {
      const [method, template] = operation.split(' ') as [string, string]
      const path = template.replace(/\{[^}]+\}/g, 'nothing-here')
      const reply = await admin.call(method, path, method === 'POST' || method === 'PATCH' ? {} : undefined)
      assert.notEqual(reply.status, 405, `${operation}: ${reply.text}`)
      if (reply.status === 404) assert.doesNotMatch(reply.json.error.message, /no such admin route/, operation)
    }
  })
})

describe('the exchange check (test/helpers/openapi-check.ts)', () => {
  let admin: AdminHarness
  before(async () => { admin = await startAdmin() })
  after(async () => { await admin.close() })

  const partner = {
    id: 'prt_abcdefghijklmnop',
    slug: 'acme',
    base_urls: { production: 'https://api.example.com/v1' },
    auth: { type: 'header', name: 'X-App-Token', prefix: '' },
    tls: null,
    timeouts: { connect_ms: 5000, request_ms: 30000 },
    retry: { max_attempts: 2, base_delay_ms: 100, max_delay_ms: 2000, on_status: [502, 503, 504], respect_retry_after: true, budget_percent: 20, budget_min_per_second: 3 },
    circuit_breaker: { failure_threshold: 5, open_ms: 30000, max_in_flight: 1000 },
    created_at: '2026-11-27T19:19:57.412Z',
    updated_at: '2026-11-27T19:19:57.412Z',
  }
  const json = 'application/json; charset=utf-8'
  const error = (code: string): unknown => ({ error: { code, message: 'm', request_id: '54f55c9d-26af-4ab3-a3c3-b75702ae8d87' } })

  it('accepts what the API really answers', async () => {
    const reply = await admin.call('POST', '/admin/partners', partnerBody('real'))
    assert.equal(reply.status, 201, reply.text)
    checkAdminExchange('GET', '/admin/partners/acme', undefined, 200, partner, json)
    checkAdminExchange('DELETE', '/admin/partners/acme', undefined, 204, undefined, undefined)
  })

  it('names the operation and the schema path of a response that does not match', () => {
    assert.throws(() => checkAdminExchange('GET', '/admin/partners/acme', undefined, 200, { ...partner, colour: 'red' }, json),
      /GET \/admin\/partners\/\{slug\} \(operationId getPartner.*must NOT have additional properties 'colour' \(schema path #\/components\/schemas\/Partner\/additionalProperties\)/s)
    assert.throws(() => checkAdminExchange('GET', '/admin/partners/acme', undefined, 200, { ...partner, auth: { type: 'header', name: 'X' } }, json),
      /\/auth must have required property 'prefix' \(schema path #\/components\/schemas\/HeaderAuth\/required\)/)
    assert.throws(() => checkAdminExchange('GET', '/admin/partners', undefined, 200, [{ ...partner, tls: undefined }], json),
      /operationId listPartners.*\/0 must have required property 'tls'/s)
  })

  it('refuses a request body the document refuses when the API accepted it', () => {
    assert.throws(() => checkAdminExchange('POST', '/admin/partners', { ...partnerBody('acme'), colour: 'red' }, 201, partner, json),
      /operationId createPartner.*request body does not match.*'colour' \(schema path #\/components\/schemas\/PartnerCreate\/additionalProperties\)/s)
    assert.throws(() => checkAdminExchange('POST', '/admin/partners', partnerBody('acme', { auth: { type: 'hmac', preset: 'nope' } }), 201, partner, json),
      /\/auth\/preset must be equal to one of the allowed values \(schema path #\/components\/schemas\/HmacPresetAuthInput\/properties\/preset\/enum\)/)
    // refused by the API: the request is expected to be invalid
    checkAdminExchange('POST', '/admin/partners', { colour: 'red' }, 400, error('invalid_request'), json)
  })

  it('refuses an undocumented route, status, content type, query parameter or error code', () => {
    assert.throws(() => checkAdminExchange('GET', '/admin/secrets', undefined, 200, {}, json), /no such path in the document.*serves a route the document does not describe/s)
    assert.throws(() => checkAdminExchange('PUT', '/admin/partners', undefined, 200, {}, json), /\/admin\/partners has no PUT/)
    assert.throws(() => checkAdminExchange('GET', '/admin/partners/acme', undefined, 418, error('not_found'), json), /status 418 is not documented/)
    assert.throws(() => checkAdminExchange('GET', '/admin/partners/acme', undefined, 200, partner, 'text/html'), /content type 'text\/html' is not among the documented application\/json/)
    assert.throws(() => checkAdminExchange('GET', '/admin/keys?colour=red', undefined, 200, [], json), /query parameter 'colour' is not documented/)
    assert.throws(() => checkAdminExchange('GET', '/admin/partners/acme', undefined, 404, error('conflict'), json), /\/error\/code must be equal to constant/)
    // the server agreeing that a route does not exist is consistent
    checkAdminExchange('GET', '/admin/secrets', undefined, 404, error('not_found'), json)
    checkAdminExchange('PUT', '/admin/partners', undefined, 405, error('method_not_allowed'), json)
    checkAdminExchange('GET', '/admin/secrets', undefined, 401, error('unauthorized'), json)
  })
})
