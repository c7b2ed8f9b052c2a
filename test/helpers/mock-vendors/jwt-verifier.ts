// A Fireblocks-style vendor (developers.fireblocks.com, "Signing a request"): every request carries
// Authorization: Bearer <JWT signed by the caller's private key> and X-API-Key. The JWT binds the
// request: uri (path + query), a single-use nonce, iat/exp, sub (the API key) and bodyHash (hex
// SHA-256 of the raw body). Verified with node:crypto alone, so no JWT library shapes the result.
import { createHash, createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto'
import { startHttpsMock, type HttpsMock, type VendorRequest } from './https-mock.js'
import type { PemPair } from '../test-certificates.js'

export type JwtAlgorithm = 'RS256' | 'ES256'

export interface JwtRequest extends VendorRequest {
  accepted: boolean
  /** why it was refused (undefined when accepted) */
  reason?: string
  /** decoded JWT header and claims, when the token could be decoded */
  jwtHeader?: Record<string, unknown>
  claims?: Record<string, unknown>
  /** the publicKeys label whose key verified the signature */
  keyLabel?: string
}

export interface JwtVerifierMockOptions {
  /** when given, X-API-Key and the sub claim must equal it */
  apiKey?: string
  /** any of these may have signed (rotation); a private key works too, its public half is used */
  publicKeys: Record<string, KeyObject | string>
  algorithm: JwtAlgorithm
  /** the most iat may lie in the past, and the most exp - iat may be (default 55) */
  maxAgeSeconds?: number
  serverCert?: PemPair
}

export type JwtVerifierMock = HttpsMock<JwtRequest>

// tolerated clock skew for an iat ahead of ours
const FUTURE_IAT_SECONDS = 5

export async function startJwtVerifierMock (options: JwtVerifierMockOptions): Promise<JwtVerifierMock> {
  const maxAge = options.maxAgeSeconds ?? 55
  const keys = usableKeys(options.publicKeys, options.algorithm)
  const seenNonces = new Set<string>()

  const check = (request: VendorRequest, record: JwtRequest): string | undefined => {
    if (options.apiKey !== undefined && request.headers['x-api-key'] !== options.apiKey) return 'X-API-Key missing or wrong'
    const match = /^Bearer +(\S+)$/i.exec(request.headers.authorization ?? '')
    if (match === null) return 'bearer token missing'
    const parts = match[1]!.split('.')
    if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) return 'malformed JWT'
    const [headerPart, claimsPart, signaturePart] = parts as [string, string, string]
    const jwtHeader = decodeJson(headerPart)
    const claims = decodeJson(claimsPart)
    if (jwtHeader === undefined || claims === undefined) return 'malformed JWT'
    record.jwtHeader = jwtHeader
    record.claims = claims
    if (jwtHeader.alg !== options.algorithm) return `alg must be ${options.algorithm}`

    const signed = Buffer.from(`${headerPart}.${claimsPart}`)
    const signature = Buffer.from(signaturePart, 'base64url')
    const key = keys.find(({ key }) => verifies(options.algorithm, signed, key, signature))
    if (key === undefined) return 'bad signature'
    record.keyLabel = key.label

    // a nonce is spent by any correctly signed token, so a replay is refused even if the first use was
    const { nonce } = claims
    const nonceKey = typeof nonce === 'string' || typeof nonce === 'number' ? String(nonce) : ''
    const reused = nonceKey !== '' && seenNonces.has(nonceKey)
    if (nonceKey !== '') seenNonces.add(nonceKey)

    const now = Date.now() / 1000
    const { iat, exp } = claims
    if (claims.uri !== request.url) return 'uri mismatch'
    if (nonceKey === '') return 'nonce missing'
    if (typeof iat !== 'number' || !Number.isFinite(iat)) return 'iat missing'
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return 'exp missing'
    if (iat - now > FUTURE_IAT_SECONDS) return 'iat in the future'
    if (now - iat > maxAge) return 'iat too old'
    if (exp <= now) return 'token expired'
    if (exp - iat > maxAge) return `exp more than ${maxAge}s after iat`
    if (options.apiKey !== undefined && claims.sub !== options.apiKey) return 'sub mismatch'
    if (claims.bodyHash !== sha256Hex(request.body)) return 'bodyHash mismatch'
    if (reused) return 'nonce reused'
    return undefined
  }

  return await startHttpsMock<JwtRequest>({ serverCert: options.serverCert }, (request) => {
    const record: JwtRequest = { ...request, accepted: false }
    const reason = check(request, record)
    record.accepted = reason === undefined
    if (reason !== undefined) {
      record.reason = reason
      return { record, answer: { status: 401, json: { message: reason, code: 401 } } }
    }
    return { record, answer: { status: 200, json: { ok: true, method: request.method, url: request.url, bodyLength: request.body.length } } }
  })
}

export interface SigningKeyPair {
  /** PKCS#8 PEM */
  privateKey: string
  /** SPKI PEM */
  publicKey: string
}

/** fresh pairs on every call: call twice for a key rotation */
export function generateSigningKeys (): { rs256: SigningKeyPair; es256: SigningKeyPair } {
  const publicKeyEncoding = { type: 'spki', format: 'pem' } as const
  const privateKeyEncoding = { type: 'pkcs8', format: 'pem' } as const
  return {
    rs256: generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding, privateKeyEncoding }),
    es256: generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding, privateKeyEncoding }),
  }
}

/** lowercase hex SHA-256: what bodyHash must be (an empty body hashes the empty string) */
export function sha256Hex (body: Buffer | string): string {
  return createHash('sha256').update(body).digest('hex')
}

// keys of the wrong type are dropped: an RSA key must never verify an ES256 token, nor the reverse
function usableKeys (given: Record<string, KeyObject | string>, algorithm: JwtAlgorithm): { label: string; key: KeyObject }[] {
  const keys = Object.entries(given)
    .map(([label, k]) => ({ label, key: createPublicKey(k) }))
    .filter(({ key }) => algorithm === 'RS256'
      ? key.asymmetricKeyType === 'rsa'
      : key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
  if (keys.length === 0) throw new Error(`no ${algorithm} key among publicKeys`)
  return keys
}

function verifies (algorithm: JwtAlgorithm, signed: Buffer, key: KeyObject, signature: Buffer): boolean {
  try {
    // RS256: RSASSA-PKCS1-v1_5 (node's default RSA padding); ES256: r||s, 32 bytes each (RFC 7518 §3.4)
    if (algorithm === 'RS256') return verify('sha256', signed, key, signature)
    return signature.length === 64 && verify('sha256', signed, { key, dsaEncoding: 'ieee-p1363' }, signature)
  } catch {
    return false
  }
}

function decodeJson (part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}
