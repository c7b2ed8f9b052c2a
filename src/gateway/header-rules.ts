// Header hygiene in both directions (docs/security.md). Name tables are built once; each request
// makes one pass over the raw header list and writes a flat [name, value, …] array that
// undici (request) and res.writeHead (response) take without further copying.
import { PAYMENT_REQUIRED, PAYMENT_RESPONSE, PAYMENT_SIGNATURE, X_PAYMENT, X_PAYMENT_RESPONSE } from '../payments/x402-headers.js'
import { withoutQueryParam } from './proxy-path.js'

/** RFC 9110 §7.6.1 hop-by-hop fields, plus RFC 2616's list and the legacy Proxy-Connection */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization',
])

/** never forwarded upstream, besides hop-by-hop, `proxy-*`, `x-forwarded-*` and names with `_` */
const REQUEST_ONLY = new Set([
  'x-relaykey', 'host', 'forwarded', 'expect',
  // RelayKey sends its own: the id the client gets back and the audit event holds
  'x-relaykey-request-id',
  // x402 payment headers are RelayKey's business, never the partner's
  PAYMENT_SIGNATURE, X_PAYMENT,
])

/**
 * tokens of every `Connection` header, lowercased, minus the names dropped anyway; null when
 * none is left: no Connection header, or only `keep-alive` (the common cases)
 */
export function connectionTokens (raw: string[]): Set<string> | null {
  let tokens: Set<string> | null = null
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length !== 10 || name.toLowerCase() !== 'connection') continue
    tokens = addConnectionTokens(raw[i + 1]!, tokens)
  }
  return tokens
}

function addConnectionTokens (value: string, tokens: Set<string> | null): Set<string> | null {
  // HOT PATH: most clients and partners send exactly this; nothing it names survives anyway
  if (value.length === 10 && value.toLowerCase() === 'keep-alive') return tokens
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase()
    if (t !== '' && !HOP_BY_HOP.has(t)) (tokens ??= new Set()).add(t)
  }
  return tokens
}

/**
 * HOT PATH: copies the client's headers that may go upstream into `out`.
 * `credentialHeader` is the lowercased name of the header the credential goes in (or null);
 * `signerHeaders` those a per-attempt signer sets (hmac, jwt, OAuth2).
 * Names with an underscore are dropped, as nginx does: CGI, WSGI and PHP upstreams read
 * `X_App_Token` and `X-App-Token` as the same variable, so a client could send a credential
 * header of its own past the one RelayKey strips and injects.
 */
export function copyRequestHeaders (raw: string[], credentialHeader: string | null, named: Set<string> | null, out: string[], signerHeaders: ReadonlySet<string> | null = null): void {
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase()
    if (HOP_BY_HOP.has(lower) || REQUEST_ONLY.has(lower) || lower === credentialHeader) continue
    if (signerHeaders !== null && signerHeaders.has(lower)) continue
    if (lower.indexOf('_') !== -1) continue
    if (lower.startsWith('proxy-') || lower.startsWith('x-forwarded-')) continue
    if (named !== null && named.has(lower)) continue
    out.push(raw[i]!, raw[i + 1]!)
  }
}

/**
 * HOT PATH: the upstream's response headers (undici raw Buffers) minus hop-by-hop fields and
 * those its `Connection` names, as strings, plus RelayKey's request id. The credential never
 * goes back to the client: with query-parameter auth (`credentialQueryParam`) redirect targets
 * lose that parameter, and any header value holding one of `secretForms` (the secret as sent:
 * `Refresh`, `Link`, an echoed header) has it replaced by `[redacted]`.
 */
export function responseHeaders (raw: Buffer[], requestId: string, credentialQueryParam: string | null = null, secretForms: readonly string[] = []): string[] {
  const out: string[] = []
  let named: Set<string> | null = null
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toString('latin1').toLowerCase() === 'connection') {
      named = addConnectionTokens(raw[i + 1]!.toString('latin1'), named)
    }
  }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1')
    // only names as long as a dropped one are lowercased and looked up (or all, when the
    // upstream's Connection header named others)
    if ((named !== null || DROPPED_RESPONSE_LENGTHS[name.length] === 1) && droppedResponseHeader(name.toLowerCase(), named)) continue
    let value = raw[i + 1]!.toString('latin1')
    if (credentialQueryParam !== null && isLocationHeader(name)) value = withoutCredential(value, credentialQueryParam)
    for (let f = 0; f < secretForms.length; f++) {
      if (value.indexOf(secretForms[f]!) !== -1) value = value.replaceAll(secretForms[f]!, '[redacted]')
    }
    out.push(name, value)
  }
  out.push('x-relaykey-request-id', requestId)
  return out
}

function isLocationHeader (name: string): boolean {
  // most names are neither length: no lowercased copy for them
  if (name.length !== 8 && name.length !== 16) return false
  const lower = name.toLowerCase()
  return lower === 'location' || lower === 'content-location'
}

function withoutCredential (url: string, param: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const hash = url.indexOf('#', q)
  const query = url.slice(q + 1, hash === -1 ? url.length : hash)
  const kept = withoutQueryParam(query, param)
  return url.slice(0, q) + (kept === '' ? '' : '?' + kept) + (hash === -1 ? '' : url.slice(hash))
}

/**
 * never passed back: RelayKey's own request id, and the x402 answer headers, which only
 * RelayKey may set (a partner's PAYMENT-RESPONSE would claim a settlement that never happened)
 */
const RESPONSE_OWNED = new Set(['x-relaykey-request-id', PAYMENT_REQUIRED, PAYMENT_RESPONSE, X_PAYMENT_RESPONSE])

function droppedResponseHeader (lower: string, named: Set<string> | null): boolean {
  return HOP_BY_HOP.has(lower) || RESPONSE_OWNED.has(lower) || (named !== null && named.has(lower))
}

/** DROPPED_RESPONSE_LENGTHS[n] === 1 when some always-dropped response header has n characters */
const DROPPED_RESPONSE_LENGTHS = new Uint8Array(64)
for (const name of [...HOP_BY_HOP, ...RESPONSE_OWNED]) DROPPED_RESPONSE_LENGTHS[name.length] = 1
