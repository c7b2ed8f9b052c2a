// Starts the admin server on a real socket against a real SQLite store in a temp dir, with a
// recording invalidation publisher and a logger whose lines are kept for inspection.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { request } from 'undici'
import { createAdminServer, type AdminDeps } from '../../src/admin/admin-server.js'
import { VirtualKeyCodec } from '../../src/keys/virtual-key.js'
import type { Invalidation, InvalidationPublisher } from '../../src/store/invalidation.js'
import { InlineSecretCipher } from '../../src/secrets/inline-cipher.js'
import type { ControlStore } from '../../src/store/control-store.js'
import { openSqliteControlStore } from '../../src/store/sqlite/sqlite-control-store.js'
import { checkAdminExchange } from '../helpers/openapi-check.js'

export const TOKEN = 'test-admin-token-0123456789abcdef'
/** a named token of scope read (the auditor) */
export const READ_TOKEN = 'test-read-token-fedcba9876543210'

export class RecordingPublisher implements InvalidationPublisher {
  readonly published: Invalidation[]

  constructor () {
    this.published = []
  }

  publish (invalidation: Invalidation): void {
    this.published.push(invalidation)
  }
}

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: any
}

export interface CallOptions {
  /** null: no Authorization header; a string: the whole header value */
  authorization?: string | null
  headers?: Record<string, string>
  /** sent as is instead of JSON.stringify(body) */
  raw?: string | Buffer
}

export interface HarnessOptions {
  cipher?: boolean
  metrics?: () => Promise<string>
  /** methods used instead of the real store's, e.g. to make one fail */
  storeOverrides?: Partial<ControlStore>
  /** the audit query and limits store behind /admin/usage and /admin/audit; without it they are 404 */
  usage?: AdminDeps['usage']
  /** RELAYKEY_SECRET_FILES_DIR; default /run/secrets, null: file secrets refused */
  secretFilesDir?: string | null
}

export class AdminHarness {
  readonly url: string
  readonly store: ControlStore
  readonly codec: VirtualKeyCodec
  readonly cipher: InlineSecretCipher | null
  readonly publisher: RecordingPublisher
  /** every log line the server wrote */
  readonly logs: string[]
  /** every response body received through `call` */
  readonly bodies: string[]
  /** added to Date.now() by the server's clock */
  clockOffset: number
  readonly #close: () => Promise<void>

  constructor (fields: {
    url: string; store: ControlStore; codec: VirtualKeyCodec; cipher: InlineSecretCipher | null
    publisher: RecordingPublisher; logs: string[]; close: () => Promise<void>
  }) {
    this.url = fields.url
    this.store = fields.store
    this.codec = fields.codec
    this.cipher = fields.cipher
    this.publisher = fields.publisher
    this.logs = fields.logs
    this.bodies = []
    this.clockOffset = 0
    this.#close = fields.close
  }

  async call (method: string, path: string, body?: unknown, options: CallOptions = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...options.headers }
    if (options.authorization !== null) headers.authorization = options.authorization ?? `Bearer ${TOKEN}`
    let payload: string | Buffer | undefined = options.raw
    if (payload === undefined && body !== undefined) payload = JSON.stringify(body)
    if (payload !== undefined) headers['content-type'] ??= 'application/json'
    const res = await request(this.url + path, { method: method as 'GET', headers, body: payload })
    const text = await res.body.text()
    this.bodies.push(text)
    let json: unknown = null
    if (text !== '' && String(res.headers['content-type']).startsWith('application/json')) json = JSON.parse(text)
    // every exchange against the OpenAPI document (src/admin/openapi.json)
    const contentType = res.headers['content-type']
    checkAdminExchange(method, path, sentBody(body, payload), res.statusCode, text === '' ? undefined : json ?? text,
      Array.isArray(contentType) ? contentType[0] : contentType)
    return { status: res.statusCode, headers: res.headers, text, json }
  }

  async close (): Promise<void> {
    await this.#close()
  }
}

export async function startAdmin (options: HarnessOptions = {}): Promise<AdminHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'relaykey-admin-'))
  const real = openSqliteControlStore(join(dir, 'relaykey.db'))
  const store = options.storeOverrides === undefined ? real : overriding(real, options.storeOverrides)
  const codec = new VirtualKeyCodec(randomBytes(32))
  const cipher = options.cipher === false ? null : new InlineSecretCipher(randomBytes(32))
  const publisher = new RecordingPublisher()
  const logs: string[] = []
  const logger = pino({ level: 'debug' }, { write (line: string) { logs.push(line) } })
  let harness: AdminHarness | null = null
  const deps: AdminDeps = {
    store,
    codec,
    cipher,
    secretFilesDir: options.secretFilesDir === undefined ? '/run/secrets' : options.secretFilesDir,
    invalidations: publisher,
    tokens: [{ name: 'admin', token: TOKEN, scope: 'write' }, { name: 'auditor', token: READ_TOKEN, scope: 'read' }],
    logger,
    now: () => Date.now() + (harness?.clockOffset ?? 0),
    readiness: async () => ({ status: 'ready', stores: { control: 'ok', limits: 'ok' }, checked_at: null, check_error: null, misconfigurations: [] }),
  }
  if (options.metrics !== undefined) deps.metrics = options.metrics
  if (options.usage !== undefined) deps.usage = options.usage
  const server = createAdminServer(deps)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  harness = new AdminHarness({
    url: `http://127.0.0.1:${port}`,
    store,
    codec,
    cipher,
    publisher,
    logs,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await real.close()
      await rm(dir, { recursive: true, force: true })
    },
  })
  return harness
}

/** A partner body with sensible values; `overrides` replace top-level fields. */
export function partnerBody (slug: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    slug,
    base_urls: { production: 'https://api.example.com/v1', sandbox: 'https://sandbox.example.com/v1' },
    auth: { type: 'header', name: 'X-App-Token', prefix: '' },
    ...overrides,
  }
}

/** An error reply: the status, a JSON body {error: {code, message, request_id}}, and that request id echoed in X-RelayKey-Request-Id. */
export function assertError (reply: Reply, status: number, code: string): void {
  assert.equal(reply.status, status, reply.text)
  assert.match(String(reply.headers['content-type']), /^application\/json/)
  assert.equal(reply.json?.error?.code, code, reply.text)
  assert.equal(typeof reply.json.error.message, 'string')
  assert.equal(reply.json.error.request_id, reply.headers['x-relaykey-request-id'])
}

/** 400 invalid_request whose message starts by naming `field`. */
export function assertInvalid (reply: Reply, field: string): void {
  assertError(reply, 400, 'invalid_request')
  const message: string = reply.json.error.message
  assert.ok(message.startsWith(`${field}: `), `message ${JSON.stringify(message)} should name ${field}`)
}

/** 409 conflict whose message starts by naming `field`. */
export function assertConflict (reply: Reply, field: string): void {
  assertError(reply, 409, 'conflict')
  const message: string = reply.json.error.message
  assert.ok(message.startsWith(`${field}: `) || message.startsWith(`${field}.`), `message ${JSON.stringify(message)} should name ${field}`)
}

/** the request body as the server read it: undefined when none was sent, else the parsed JSON (the raw text if it is none) */
function sentBody (body: unknown, payload: string | Buffer | undefined): unknown {
  if (payload === undefined || payload.length === 0) return undefined
  if (typeof payload === 'string' && payload === JSON.stringify(body)) return body
  const text = payload.toString()
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

function overriding (store: ControlStore, overrides: Partial<ControlStore>): ControlStore {
  return new Proxy(store, {
    get (target, prop, receiver) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof ControlStore]
      const value = Reflect.get(target, prop, receiver)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}
