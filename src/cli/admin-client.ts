// How the CLI reaches a running node's admin API: RELAYKEY_ADMIN_URL (default
// http://127.0.0.1:$RELAYKEY_ADMIN_PORT, 8081), with RELAYKEY_ADMIN_TOKEN or, on an embedded
// node's machine, the token file RelayKey wrote in RELAYKEY_DATA_DIR.
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { request } from 'undici'
import { CliError, EXIT } from './cli-error.js'

export interface AdminReply<T = any> {
  status: number
  body: T
}

export class AdminClient {
  readonly url: string
  readonly #token: string

  constructor (url: string, token: string) {
    this.url = url.replace(/\/+$/, '')
    this.#token = token
  }

  static fromEnv (env: NodeJS.ProcessEnv = process.env): AdminClient {
    const url = env.RELAYKEY_ADMIN_URL?.trim() || `http://127.0.0.1:${env.RELAYKEY_ADMIN_PORT?.trim() || '8081'}`
    let token = env.RELAYKEY_ADMIN_TOKEN?.trim() ?? ''
    if (token === '') {
      const file = join(resolve(env.RELAYKEY_DATA_DIR ?? './data'), 'admin-token')
      try {
        token = readFileSync(file, 'utf8').trim()
      } catch {
        throw new CliError('no admin token: set RELAYKEY_ADMIN_TOKEN, or run where RELAYKEY_DATA_DIR holds an embedded node\'s admin-token file', EXIT.usage)
      }
    }
    return new AdminClient(url, token)
  }

  /** any answer; throws only when the node cannot be reached */
  async call<T = any> (method: string, path: string, body?: unknown): Promise<AdminReply<T>> {
    // undici, not Node's fetch: fetch refuses the Fetch standard's "bad ports" (6000, 10080, …),
    // which an admin port may well be
    let res
    let text: string
    try {
      res = await request(this.url + path, {
        method: method as 'GET',
        headers: { authorization: `Bearer ${this.#token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      })
      text = await res.body.text()
    } catch (err) {
      throw new CliError(`cannot reach the admin API at ${this.url} (${(err as { code?: string }).code ?? (err as Error).message})`, EXIT.failed)
    }
    let parsed: unknown = text
    if (text !== '' && String(res.headers['content-type'] ?? '').includes('json')) parsed = JSON.parse(text)
    return { status: res.statusCode, body: (text === '' ? undefined : parsed) as T }
  }

  /** the answer's body when its status is `expected`, else a CliError with the API's message */
  async expect<T = any> (method: string, path: string, expected: number, body?: unknown): Promise<T> {
    const reply = await this.call<T>(method, path, body)
    if (reply.status !== expected) throw apiError(this.url, method, path, reply)
    return reply.body
  }
}

export function apiError (url: string, method: string, path: string, reply: AdminReply): CliError {
  const error = (reply.body as { error?: { code?: string; message?: string } } | undefined)?.error
  const what = error === undefined ? `HTTP ${reply.status}` : `${reply.status} ${error.code}: ${error.message}`
  if (reply.status === 401) {
    return new CliError(`the admin API at ${url} refused the token (401 unauthorized): check RELAYKEY_ADMIN_TOKEN, or the admin-token file in RELAYKEY_DATA_DIR`, EXIT.usage)
  }
  return new CliError(`${method} ${path}: ${what}`, reply.status === 404 ? EXIT.notFound : EXIT.failed)
}
