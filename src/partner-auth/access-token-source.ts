// One OAuth2 client-credentials token per credential, shared by every request of the worker,
// and through SharedTokens by the node's other workers and the other nodes. A token is
// refreshed before it expires by one request at a time: the others keep using the current
// token meanwhile, or, when there is none, wait for the same fetch (single flight per worker;
// a claim in the shared store makes it one fetch for the deployment).
import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import type { OAuth2ClientCredentialsAuth } from '../store/model.js'
import type { CachedToken, SharedTokens } from './shared-tokens.js'

/** how long a fetch may hold the claim; others wait for it at most this long, then fetch themselves */
const CLAIM_MS = 10_000
const POLL_MS = 50
const MAX_TOKEN_ANSWER_BYTES = 64 * 1024

export interface TokenEndpoint {
  auth: OAuth2ClientCredentialsAuth
  clientId: string
  clientSecret: string
  /** the pool for the token URL's origin (the partner's TLS settings and the egress policy apply) */
  dispatcher: Dispatcher
  timeoutMs: number
}

export class TokenFetchError extends Error {
  override readonly name = 'TokenFetchError'
}

export class AccessTokenSource {
  readonly #id: string
  #endpoint: TokenEndpoint
  readonly #shared: SharedTokens
  readonly #logger: Logger
  #current: CachedToken | null = null
  #fetching: Promise<void> | null = null
  /** a token the partner refused: not taken back from the shared store */
  #refused = ''

  constructor (credentialId: string, endpoint: TokenEndpoint, shared: SharedTokens, logger: Logger) {
    this.#id = credentialId
    this.#endpoint = endpoint
    this.#shared = shared
    this.#logger = logger
  }

  /** the partner's TLS settings or timeouts changed: later fetches use them (the token stays) */
  useEndpoint (endpoint: TokenEndpoint): void {
    this.#endpoint = endpoint
  }

  /** HOT PATH for OAuth2 partners: null when token() may be used now */
  ready (now: number): Promise<void> | null {
    const current = this.#current
    if (current !== null && now < usableUntil(current)) {
      if (now >= current.refreshAt && this.#fetching === null) {
        // in the background: nobody waits on it, so its failure (logged in #refresh) must not
        // become an unhandled rejection
        this.#fetching = this.#refresh()
        this.#fetching.catch(ignore)
      }
      return null
    }
    return this.#fetching ??= this.#refresh()
  }

  token (): string {
    return this.#current!.token
  }

  /** the partner refused `token` (401): it is not used again here or, if still stored, anywhere */
  drop (token: string): void {
    this.#refused = token
    if (this.#current?.token === token) this.#current = null
    this.#shared.drop(this.#id, token).catch((err: unknown) => {
      this.#logger.warn({ credential_id: this.#id, err: (err as Error).message }, 'could not drop a refused access token from the shared store')
    })
  }

  async #refresh (): Promise<void> {
    try {
      const stored = await this.#readShared()
      if (stored !== null && Date.now() < stored.refreshAt) return this.#install(stored)
      if (await this.#claim()) return await this.#fetchAndShare(true)
      // another worker or node is fetching it: wait for it; take the claim over if it is let go
      // (that fetch failed), and fetch here after all if nothing came in time
      const deadline = Date.now() + CLAIM_MS
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS))
        const shared = await this.#readShared()
        if (shared !== null && Date.now() < shared.refreshAt) return this.#install(shared)
        if (await this.#claim()) return await this.#fetchAndShare(true)
      }
      await this.#fetchAndShare(false)
    } catch (err) {
      // a background refresh that failed leaves the current token serving until it expires
      if (this.#current !== null && Date.now() < usableUntil(this.#current)) {
        this.#logger.warn({ credential_id: this.#id, err: (err as Error).message }, 'access token refresh failed; the current token serves until it expires')
        return
      }
      throw err
    } finally {
      this.#fetching = null
    }
  }

  #install (token: CachedToken): void {
    this.#current = token
  }

  /** fetches, serves and shares a token; `claimed`: the claim is this worker's, let go on failure */
  async #fetchAndShare (claimed: boolean): Promise<void> {
    let fresh: CachedToken
    try {
      fresh = await this.#fetch()
    } catch (err) {
      // the others waiting on the claim fetch for themselves at once rather than time out
      if (claimed) await this.#shared.release(this.#id).catch(ignore)
      throw err
    }
    this.#install(fresh)
    await this.#shared.write(this.#id, fresh).catch((err: unknown) => {
      this.#logger.warn({ credential_id: this.#id, err: (err as Error).message }, 'could not share the access token; each worker fetches its own meanwhile')
    })
  }

  async #readShared (): Promise<CachedToken | null> {
    try {
      const token = await this.#shared.read(this.#id)
      return token === null || token.token === this.#refused ? null : token
    } catch {
      return null // the store is down: this worker fetches its own
    }
  }

  async #claim (): Promise<boolean> {
    try {
      return await this.#shared.claim(this.#id, CLAIM_MS)
    } catch {
      return true
    }
  }

  /** one client-credentials grant (RFC 6749 §4.4) */
  async #fetch (): Promise<CachedToken> {
    const { auth, clientId, clientSecret, dispatcher, timeoutMs } = this.#endpoint
    const form = new URLSearchParams({ grant_type: 'client_credentials' })
    if (auth.scope !== null) form.set('scope', auth.scope)
    if (auth.audience !== null) form.set('audience', auth.audience)
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
    if (auth.client_auth === 'basic') {
      // RFC 6749 §2.3.1: each part form-urlencoded before the Basic encoding
      headers.authorization = 'Basic ' + Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString('base64')
    } else {
      form.set('client_id', clientId)
      form.set('client_secret', clientSecret)
    }
    const url = new URL(auth.token_url)
    const answer = await dispatcher.request({
      method: 'POST', path: url.pathname + url.search, headers, body: form.toString(), headersTimeout: timeoutMs, bodyTimeout: timeoutMs,
    })
    const text = await boundedText(answer.body)
    if (answer.statusCode !== 200) {
      // the error code only (RFC 6749 §5.2): a description may echo what was sent
      const code = /"error"\s*:\s*"([A-Za-z0-9_.-]{1,64})"/.exec(text)?.[1] ?? 'no error code'
      throw new TokenFetchError(`token URL answered ${answer.statusCode} (${code})`)
    }
    let body: { access_token?: unknown; expires_in?: unknown; token_type?: unknown }
    try {
      body = JSON.parse(text)
    } catch {
      throw new TokenFetchError('token URL answered 200 without a JSON body')
    }
    if (typeof body.access_token !== 'string' || body.access_token === '' || !/^[\x21-\x7e]+$/.test(body.access_token)) {
      throw new TokenFetchError('token URL answered without a usable access_token')
    }
    if (typeof body.token_type === 'string' && body.token_type.toLowerCase() !== 'bearer') {
      throw new TokenFetchError(`token URL issued a ${body.token_type.slice(0, 32)} token; only Bearer tokens are supported`)
    }
    // no expires_in: the server's policy is unknown, so an hour, refreshed on the first 401
    const lifetimeMs = (typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 3600) * 1000
    this.#logger.info({ credential_id: this.#id, expires_in_s: lifetimeMs / 1000 }, 'access token fetched')
    // counted from its arrival: a slow answer must not leave a token that is stale on arrival
    // (and an attempt waiting for it in a loop of fetches)
    const arrived = Date.now()
    return {
      token: body.access_token,
      expiresAt: arrived + lifetimeMs,
      // refreshed in its last fifth (at most the last minute)
      refreshAt: arrived + lifetimeMs - Math.min(60_000, lifetimeMs / 5),
    }
  }
}

/** not used in its last tenth (at most 5 s): it could expire on the way */
function usableUntil (token: CachedToken): number {
  return token.expiresAt - Math.min(5_000, (token.expiresAt - token.refreshAt) / 2)
}

function ignore (): void {}

function formEncode (value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2)
}

async function boundedText (body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > MAX_TOKEN_ANSWER_BYTES) throw new TokenFetchError('token URL answer is too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
