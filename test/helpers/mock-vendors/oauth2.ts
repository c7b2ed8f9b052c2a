// An OAuth 2.0 client-credentials vendor (RFC 6749 §4.4): a token endpoint at POST /oauth/token and,
// on every other path of the same origin, an API that wants one of its bearer tokens (RFC 6750).
// Tokens are random and opaque; expiry is kept server-side from the issue time, as vendors do.
import { randomBytes } from 'node:crypto'
import { startHttpsMock, type HttpsMock, type JsonAnswer, type VendorRequest } from './https-mock.js'
import type { PemPair } from '../test-certificates.js'

export const TOKEN_PATH = '/oauth/token'

export type ClientAuthMethod = 'basic' | 'body'

export interface TokenRequest extends VendorRequest {
  kind: 'token'
  /** how the client authenticated: 'both' and 'none' are refused */
  clientAuth: ClientAuthMethod | 'both' | 'none'
  clientId?: string
  grantType?: string
  scope?: string
  audience?: string
  status: number
  /** the OAuth error code when refused */
  error?: string
  accessToken?: string
}

export interface ApiRequest extends VendorRequest {
  kind: 'api'
  token?: string
  tokenValid: boolean
  /** why the token was refused: missing, unknown, revoked, expired */
  reason?: string
}

export interface OAuth2MockOptions {
  clientId: string
  clientSecret: string
  expiresInSeconds?: number
  /** which client authentication the token endpoint takes (default 'either') */
  clientAuth?: ClientAuthMethod | 'either'
  serverCert?: PemPair
}

export interface OAuth2Mock extends HttpsMock<TokenRequest | ApiRequest> {
  /** url + /oauth/token */
  tokenUrl: string
  tokenRequests: TokenRequest[]
  apiRequests: ApiRequest[]
  /** every token issued so far stops working; new ones are fine */
  revokeAll (): void
  /** lifetime of tokens issued from now on; tokens already issued keep theirs */
  setExpiresIn (seconds: number): void
  /** the old secret is refused from now on; tokens already issued stay valid */
  rotateClientSecret (newSecret: string): void
}

interface IssuedToken {
  expiresAt: number
  revoked: boolean
}

export async function startOAuth2Mock (options: OAuth2MockOptions): Promise<OAuth2Mock> {
  let expiresIn = options.expiresInSeconds ?? 3600
  let secret = options.clientSecret
  const allowed = options.clientAuth ?? 'either'
  const tokens = new Map<string, IssuedToken>()
  const tokenRequests: TokenRequest[] = []
  const apiRequests: ApiRequest[] = []

  const token = (request: VendorRequest): { record: TokenRequest; answer: JsonAnswer } => {
    const record: TokenRequest = { ...request, kind: 'token', clientAuth: 'none', status: 0 }
    const answer = tokenAnswer(request, record)
    record.status = answer.status
    if (answer.status !== 200) record.error = (answer.json as { error: string }).error
    tokenRequests.push(record)
    return { record, answer }
  }

  const tokenAnswer = (request: VendorRequest, record: TokenRequest): JsonAnswer => {
    // §5.1: token responses must not be cached
    const noStore = { 'cache-control': 'no-store', pragma: 'no-cache' }
    const fail = (status: number, error: string, description: string, extra: Record<string, string> = {}): JsonAnswer =>
      ({ status, json: { error, error_description: description }, headers: { ...noStore, ...extra } })
    if (request.method !== 'POST') return fail(405, 'invalid_request', 'the token endpoint takes POST only', { allow: 'POST' })
    const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    if (type !== 'application/x-www-form-urlencoded') {
      return fail(400, 'invalid_request', 'the body must be application/x-www-form-urlencoded')
    }
    const form = new URLSearchParams(request.body.toString('utf8'))
    const grantType = form.get('grant_type')
    const scope = form.get('scope')
    const audience = form.get('audience')
    if (grantType !== null) record.grantType = grantType
    if (scope !== null) record.scope = scope
    if (audience !== null) record.audience = audience

    const basic = basicCredentials(request.headers.authorization)
    const inBody = form.has('client_secret')
    record.clientAuth = basic !== undefined && inBody ? 'both' : basic !== undefined ? 'basic' : inBody ? 'body' : 'none'
    // §2.3.1: a refused Basic login gets a Basic challenge
    const challenge: Record<string, string> = basic !== undefined ? { 'www-authenticate': 'Basic realm="mock-oauth2"' } : {}
    // §2.3: a client must not use more than one authentication method per request
    if (record.clientAuth === 'both') return fail(400, 'invalid_request', 'more than one client authentication method')
    if (record.clientAuth === 'none') return fail(401, 'invalid_client', 'client authentication is missing')
    if (allowed !== 'either' && record.clientAuth !== allowed) {
      return fail(401, 'invalid_client', `this server takes ${allowed} client authentication only`, challenge)
    }
    const id = basic === 'malformed' ? undefined : basic?.id ?? form.get('client_id') ?? undefined
    const given = basic === 'malformed' ? undefined : basic?.secret ?? form.get('client_secret') ?? undefined
    if (id !== undefined) record.clientId = id
    if (id !== options.clientId || given !== secret) return fail(401, 'invalid_client', 'client authentication failed', challenge)

    if (record.grantType === undefined) return fail(400, 'invalid_request', 'grant_type is missing')
    if (record.grantType !== 'client_credentials') return fail(400, 'unsupported_grant_type', 'only client_credentials is supported')

    const accessToken = randomBytes(24).toString('base64url')
    tokens.set(accessToken, { expiresAt: Date.now() + expiresIn * 1000, revoked: false })
    record.accessToken = accessToken
    const json: Record<string, unknown> = { access_token: accessToken, token_type: 'Bearer', expires_in: expiresIn }
    if (record.scope !== undefined) json.scope = record.scope
    return { status: 200, json, headers: noStore }
  }

  const api = (request: VendorRequest): { record: ApiRequest; answer: JsonAnswer } => {
    const match = /^Bearer +(\S+)$/i.exec(request.headers.authorization ?? '')
    const bearer = match?.[1]
    const issued = bearer === undefined ? undefined : tokens.get(bearer)
    const reason = bearer === undefined
      ? 'missing'
      : issued === undefined ? 'unknown' : issued.revoked ? 'revoked' : issued.expiresAt <= Date.now() ? 'expired' : undefined
    const record: ApiRequest = { ...request, kind: 'api', tokenValid: reason === undefined }
    if (bearer !== undefined) record.token = bearer
    if (reason !== undefined) record.reason = reason
    apiRequests.push(record)
    if (reason === undefined) {
      return { record, answer: { status: 200, json: { ok: true, method: request.method, url: request.url, bodyLength: request.body.length } } }
    }
    // RFC 6750 §3.1: no error code when the request carried no token at all
    const challenge = reason === 'missing'
      ? 'Bearer realm="mock-oauth2"'
      : `Bearer realm="mock-oauth2", error="invalid_token", error_description="token ${reason}"`
    const json = reason === 'missing'
      ? { error_description: 'bearer token missing' }
      : { error: 'invalid_token', error_description: `token ${reason}` }
    return { record, answer: { status: 401, json, headers: { 'www-authenticate': challenge } } }
  }

  const mock = await startHttpsMock<TokenRequest | ApiRequest>({ serverCert: options.serverCert }, (request) =>
    request.url.split('?')[0] === TOKEN_PATH ? token(request) : api(request))
  return {
    ...mock,
    tokenUrl: mock.url + TOKEN_PATH,
    tokenRequests,
    apiRequests,
    revokeAll () {
      for (const issued of tokens.values()) issued.revoked = true
    },
    setExpiresIn (seconds) { expiresIn = seconds },
    rotateClientSecret (newSecret) { secret = newSecret },
  }
}

/**
 * RFC 6749 §2.3.1: id and secret are form-urlencoded, joined by ':' and base64-encoded.
 * undefined when there is no Basic header, 'malformed' when it cannot be decoded.
 */
function basicCredentials (authorization: string | undefined): { id: string; secret: string } | 'malformed' | undefined {
  const match = /^Basic +(\S+)$/i.exec(authorization ?? '')
  if (match === null) return undefined
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return 'malformed'
  try {
    return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) }
  } catch {
    return 'malformed'
  }
}

function formDecode (value: string): string {
  return decodeURIComponent(value.replace(/\+/g, ' '))
}
