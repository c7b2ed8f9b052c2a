// Checks admin API exchanges against the OpenAPI document (src/admin/openapi.json), so the
// document cannot drift from the code: every admin call the suite makes goes through
// `checkAdminExchange` (AdminHarness.call and RelayKeyProcess.admin), which throws when the
// route, the status, the content type, the response body or (on a 2xx answer) the request body
// and query parameters are not what the document says.
//
// Schemas are compiled with Ajv in JSON Schema 2020-12 mode (OpenAPI 3.1's dialect), `$ref`s
// resolved to components, formats checked by ajv-formats. Ajv cannot read a discriminator's
// `mapping` (it is there for client generators); it is dropped before compiling, which changes
// nothing, because each mapped schema names its tag with `const`.
import { appendFileSync, readFileSync } from 'node:fs'
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'

/** the document as kept in the repository; dist/test/helpers/ → the source tree */
export const OPENAPI_FILE = new URL('../../../src/admin/openapi.json', import.meta.url)

type Json = Record<string, any>

interface Operation {
  method: string
  /** the path template as the document writes it, e.g. /admin/keys/{id}/rotate */
  template: string
  operationId: string
  definition: Json
  /** path-item and operation parameters together */
  parameters: Json[]
}

interface PathTemplate {
  template: string
  segments: string[]
  /** lowercase method → operation */
  operations: Map<string, Operation>
}

export interface AdminOpenApi {
  document: Json
  /** every operation, `METHOD /template` */
  operations (): string[]
  /** the operation `method` on `path` (query string allowed) maps to, or null */
  find (method: string, path: string): Operation | null
  /** compiles every schema of components.schemas; throws on the first that does not compile */
  compileAll (): string[]
  check (method: string, path: string, requestBody: unknown, status: number, responseBody: unknown, contentType: string | null | undefined): void
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']
const BASE = 'https://relaykey.invalid/admin/openapi.json'

let loaded: AdminOpenApi | null = null
let exchanges = 0
const operationsSeen = new Map<string, number>()

/** The document, compiled once per process. */
export function adminOpenApi (): AdminOpenApi {
  loaded ??= load(JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as Json)
  return loaded
}

/**
 * Throws a descriptive error when an admin exchange does not match the OpenAPI document:
 *
 * - a route the document lacks, unless the server answered 404 (no such route) or 401 (the token
 *   is checked before routing); a method the document lacks on a documented path, unless the
 *   server answered 405 or 401;
 * - a status the operation does not list, a content type it does not list for that status, or a
 *   response body its schema refuses (an error body is checked against the error envelope);
 * - on a 2xx answer: a request body the operation's schema refuses (or one it does not take),
 *   a missing required body, or an undocumented or invalid query parameter. A request the API
 *   refused (4xx) may well be invalid, so it is not checked.
 *
 * `responseBody` is the parsed JSON for application/json, the text for text/plain and
 * undefined for an empty body.
 */
export function checkAdminExchange (method: string, path: string, requestBody: unknown, status: number, responseBody: unknown, contentType: string | null | undefined): void {
  adminOpenApi().check(method, path, requestBody, status, responseBody, contentType)
  exchanges++
}

/** how many exchanges this process checked, and how often each operation came up */
export function adminExchangeStats (): { exchanges: number; operations: Record<string, number> } {
  return { exchanges, operations: Object.fromEntries(operationsSeen) }
}

// With RELAYKEY_OPENAPI_STATS_FILE set, each test process appends one JSON line of its counts
// when it exits (a whole suite run can then be summed up).
const statsFile = process.env.RELAYKEY_OPENAPI_STATS_FILE
if (statsFile !== undefined && statsFile !== '') {
  process.on('exit', () => {
    if (exchanges > 0) appendFileSync(statsFile, JSON.stringify({ pid: process.pid, argv: process.argv.slice(1), ...adminExchangeStats() }) + '\n')
  })
}

function load (document: Json): AdminOpenApi {
  const schemas = structuredClone(document.components?.schemas ?? {}) as Json
  dropDiscriminatorMappings(schemas)
  // where each schema object sits in the document, to name the failing schema in messages
  const pointers = new WeakMap<object, string>()
  indexPointers(schemas, '#/components/schemas', pointers)
  const documentPointers = new WeakMap<object, string>()
  indexPointers(document, '#', documentPointers)

  const ajv = new Ajv2020({ strict: true, strictTypes: false, strictRequired: false, allowUnionTypes: true, allErrors: true, verbose: true, discriminator: true })
  addFormatsModule.default(ajv)
  // the wrapper's only keyword; `$ref: "#/components/schemas/X"` resolves inside it
  ajv.addKeyword({ keyword: 'components', schemaType: 'object' })
  ajv.addSchema({ $id: BASE, components: { schemas } })

  const compiled = new Map<object, ValidateFunction>()
  let inlineIds = 0
  /** a validator for a schema as it appears in the document (inline or a $ref) */
  const validator = (schema: Json): ValidateFunction => {
    let fn = compiled.get(schema)
    if (fn === undefined) {
      const copy = rebase(structuredClone(schema))
      indexPointers(copy, documentPointers.get(schema) ?? '(inline schema)', pointers)
      copy.$id = `https://relaykey.invalid/admin/openapi/inline-${inlineIds++}`
      fn = ajv.compile(copy)
      compiled.set(schema, fn)
    }
    return fn
  }
  const deref = (value: Json): Json => resolveRef(document, value)

  const templates: PathTemplate[] = []
  for (const [template, item] of Object.entries(document.paths ?? {}) as Array<[string, Json]>) {
    const operations = new Map<string, Operation>()
    for (const method of HTTP_METHODS) {
      const definition = item[method] as Json | undefined
      if (definition === undefined) continue
      const parameters = [...(item.parameters ?? []), ...(definition.parameters ?? [])].map(deref)
      operations.set(method, { method: method.toUpperCase(), template, operationId: String(definition.operationId ?? `${method} ${template}`), definition, parameters })
    }
    templates.push({ template, segments: template.split('/'), operations })
  }
  // literal segments beat templated ones, as in the router
  templates.sort((a, b) => literalCount(b) - literalCount(a))

  const findTemplate = (path: string): PathTemplate | null => {
    const segments = path.split('/')
    for (const t of templates) {
      if (t.segments.length !== segments.length) continue
      if (t.segments.every((s, i) => isParam(s) ? segments[i] !== '' : s === segments[i])) return t
    }
    return null
  }

  const fail = (where: string, message: string): never => {
    throw new Error(`OpenAPI (src/admin/openapi.json): ${where}: ${message}`)
  }

  const validate = (where: string, what: string, schema: Json, value: unknown): void => {
    const fn = validator(schema)
    if (fn(value)) return
    const reasons = (fn.errors ?? []).slice(0, 8).map((e) => describe(e, pointers)).join('; ')
    const shown = JSON.stringify(value)
    fail(where, `${what} does not match its schema (${schemaName(schema)}): ${reasons}\n  ${what}: ${shown !== undefined && shown.length > 2000 ? shown.slice(0, 2000) + '…' : shown}`)
  }

  const errorResponse = (status: number): Json | null => {
    const name = ({ 400: 'InvalidRequest', 401: 'Unauthorized', 404: 'NotFound', 405: 'MethodNotAllowed' } as Record<number, string>)[status]
    return name === undefined ? null : document.components.responses[name] as Json
  }

  const checkResponse = (where: string, response: Json, status: number, responseBody: unknown, contentType: string | null | undefined): void => {
    const content = response.content as Json | undefined
    const empty = responseBody === undefined || responseBody === ''
    if (content === undefined) {
      if (!empty) fail(where, `the document says ${status} has no body, but one came back: ${String(JSON.stringify(responseBody)).slice(0, 300)}`)
      return
    }
    const mediaType = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
    const media = content[mediaType] as Json | undefined
    if (media === undefined) fail(where, `content type '${contentType ?? '(none)'}' is not among the documented ${Object.keys(content).join(', ')} for ${status}`)
    if (media!.schema !== undefined) validate(where, 'response body', media!.schema as Json, responseBody)
  }

  const check = (method: string, rawPath: string, requestBody: unknown, status: number, responseBody: unknown, contentType: string | null | undefined): void => {
    const q = rawPath.indexOf('?')
    const path = q === -1 ? rawPath : rawPath.slice(0, q)
    const query = new URLSearchParams(q === -1 ? '' : rawPath.slice(q + 1))
    const upper = method.toUpperCase()
    const template = findTemplate(path)
    const operation = template?.operations.get(method.toLowerCase())

    if (operation === undefined) {
      // not an operation of the document: consistent only if the server said so too
      const where = `${upper} ${path} (${template === null ? 'no such path in the document' : `${template.template} has no ${upper}`}) answered ${status}`
      const allowed = status === 401 || (template === null ? status === 404 : status === 405)
      if (!allowed) fail(where, 'the server serves a route the document does not describe')
      checkResponse(where, errorResponse(status)!, status, responseBody, contentType)
      return
    }

    const where = `${upper} ${operation.template} (operationId ${operation.operationId}; called as ${upper} ${rawPath.length > 200 ? rawPath.slice(0, 200) + '…' : rawPath}) answered ${status}`
    operationsSeen.set(operation.operationId, (operationsSeen.get(operation.operationId) ?? 0) + 1)
    const responses = operation.definition.responses as Json
    const documented = responses[String(status)] ?? responses[`${String(status)[0]}XX`] ?? responses.default
    if (documented === undefined) fail(where, `status ${status} is not documented (documented: ${Object.keys(responses).join(', ')})`)
    checkResponse(where, deref(documented), status, responseBody, contentType)

    if (status < 200 || status > 299) return
    // the server took the request, so it must have been valid per the document
    const requestBodyDefinition = operation.definition.requestBody === undefined ? undefined : deref(operation.definition.requestBody as Json)
    if (requestBodyDefinition === undefined) {
      if (requestBody !== undefined) fail(where, `the operation takes no request body, but the accepted request had one: ${String(JSON.stringify(requestBody)).slice(0, 300)}`)
    } else if (requestBody === undefined) {
      if (requestBodyDefinition.required === true) fail(where, 'the document requires a request body, but the server accepted a request without one')
    } else {
      const media = requestBodyDefinition.content?.['application/json'] as Json | undefined
      if (media === undefined) fail(where, 'the operation documents no application/json request body')
      validate(where, 'request body', media!.schema as Json, requestBody)
    }

    const queryParameters = new Map(operation.parameters.filter((p) => p.in === 'query').map((p) => [p.name as string, p]))
    const seen = new Set<string>()
    for (const [name, value] of query) {
      const parameter = queryParameters.get(name)
      if (parameter === undefined) fail(where, `query parameter '${name}' is not documented, but the server accepted it (documented: ${[...queryParameters.keys()].join(', ') || 'none'})`)
      if (seen.has(name)) fail(where, `query parameter '${name}' was given twice and accepted; the document allows it once`)
      seen.add(name)
      validate(where, `query parameter '${name}'`, parameter!.schema as Json, value)
    }
    for (const [name, parameter] of queryParameters) {
      if (parameter.required === true && !seen.has(name)) fail(where, `required query parameter '${name}' was missing, but the server accepted the request`)
    }
    const pathSegments = path.split('/')
    template!.segments.forEach((segment, i) => {
      if (!isParam(segment)) return
      const name = segment.slice(1, -1)
      const parameter = operation.parameters.find((p) => p.in === 'path' && p.name === name)
      if (parameter === undefined) fail(where, `path parameter '${name}' is not documented`)
      validate(where, `path parameter '${name}'`, parameter!.schema as Json, decodeURIComponent(pathSegments[i]!))
    })
  }

  return {
    document,
    operations: () => templates.flatMap((t) => [...t.operations.values()].map((o) => `${o.method} ${o.template}`)).sort(),
    find: (method, path) => findTemplate(path.split('?')[0]!)?.operations.get(method.toLowerCase()) ?? null,
    compileAll: () => Object.keys(schemas).map((name) => {
      validator({ $ref: `#/components/schemas/${name}` })
      return name
    }),
    check,
  }
}

function isParam (segment: string): boolean {
  return segment.startsWith('{') && segment.endsWith('}')
}

function literalCount (t: PathTemplate): number {
  return t.segments.filter((s) => !isParam(s)).length
}

/** follows a local `$ref` (parameters, responses, request bodies) */
function resolveRef (document: Json, value: Json): Json {
  let current = value
  for (let hops = 0; typeof current.$ref === 'string'; hops++) {
    if (hops > 10 || !current.$ref.startsWith('#/')) throw new Error(`OpenAPI: cannot resolve ${String(current.$ref)}`)
    let target: any = document
    for (const part of current.$ref.slice(2).split('/')) target = target?.[part.replace(/~1/g, '/').replace(/~0/g, '~')]
    if (target === undefined) throw new Error(`OpenAPI: ${String(current.$ref)} points at nothing`)
    current = target
  }
  return current
}

/** an inline schema's local refs, pointed at the compiled components */
function rebase (schema: any): any {
  if (Array.isArray(schema)) return schema.map(rebase)
  if (schema === null || typeof schema !== 'object') return schema
  const out: Json = {}
  for (const [k, v] of Object.entries(schema)) out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? BASE + v : rebase(v)
  return out
}

function dropDiscriminatorMappings (value: any): void {
  if (value === null || typeof value !== 'object') return
  if (value.discriminator !== undefined && typeof value.discriminator === 'object') delete value.discriminator.mapping
  for (const child of Object.values(value)) dropDiscriminatorMappings(child)
}

function indexPointers (value: any, pointer: string, pointers: WeakMap<object, string>): void {
  if (value === null || typeof value !== 'object') return
  pointers.set(value, pointer)
  for (const [key, child] of Object.entries(value)) indexPointers(child, `${pointer}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, pointers)
}

function schemaName (schema: Json): string {
  return typeof schema.$ref === 'string' ? schema.$ref : 'inline schema'
}

/** `/auth/name must match pattern "…" (schema path #/components/schemas/HeaderAuthInput/properties/name/pattern)` */
function describe (error: ErrorObject, pointers: WeakMap<object, string>): string {
  const at = error.instancePath === '' ? '(the body)' : error.instancePath
  const parent = error.parentSchema === undefined ? undefined : pointers.get(error.parentSchema)
  const schemaPath = parent === undefined ? error.schemaPath : `${parent}/${error.keyword}`
  const params = error.params as { additionalProperty?: string; passingSchemas?: number[] | null }
  const extra = error.keyword === 'additionalProperties'
    ? ` '${String(params.additionalProperty)}'`
    : error.keyword === 'oneOf' && Array.isArray(params.passingSchemas) ? `, but it matched several: ${params.passingSchemas.join(' and ')}` : ''
  return `${at} ${error.message ?? error.keyword}${extra} (schema path ${schemaPath})`
}
