// Sumsub's request signing (docs.sumsub.com/reference/authentication): X-App-Token, X-App-Access-Ts
// (Unix seconds) and X-App-Access-Sig, the lowercase hex HMAC-SHA256 (key: the secret) of
// ts + METHOD + path-with-query + raw body bytes.
import { createHmac } from 'node:crypto'
import { startHttpsMock, type HttpsMock, type JsonAnswer, type VendorRequest } from './https-mock.js'
import type { PemPair } from '../test-certificates.js'

export interface SumsubRequest extends VendorRequest {
  signatureValid: boolean
  /** why the signature check failed (undefined when valid) */
  reason?: string
  status: number
}

export interface SumsubMockOptions {
  appToken: string
  secretKey: string
  /** how far X-App-Access-Ts may be from now, either way (default 60) */
  maxSkewSeconds?: number
  serverCert?: PemPair
}

export interface SumsubMock extends HttpsMock<SumsubRequest> {
  /** the next `count` requests answer `status` (default 503) whatever their signature; still checked and recorded */
  failNext (count: number, status?: number): void
}

/** the value X-App-Access-Sig must carry */
export function sumsubSignature (secretKey: string, ts: string, method: string, url: string, body: Buffer): string {
  return createHmac('sha256', secretKey).update(ts + method.toUpperCase() + url).update(body).digest('hex')
}

export async function startSumsubMock (options: SumsubMockOptions): Promise<SumsubMock> {
  const maxSkew = options.maxSkewSeconds ?? 60
  const failures: number[] = []
  const check = (request: VendorRequest): string | undefined => {
    const token = header(request, 'x-app-token')
    const ts = header(request, 'x-app-access-ts')
    const sig = header(request, 'x-app-access-sig')
    if (token === undefined) return 'X-App-Token header is missing'
    if (token !== options.appToken) return 'App token is unknown'
    if (ts === undefined) return 'X-App-Access-Ts header is missing'
    if (sig === undefined) return 'X-App-Access-Sig header is missing'
    if (!/^\d+$/.test(ts)) return 'X-App-Access-Ts is not a Unix time in seconds'
    if (Math.abs(Date.now() / 1000 - Number(ts)) > maxSkew) return 'Request timestamp is too far from the server time'
    const expected = sumsubSignature(options.secretKey, ts, request.method, request.url, request.body)
    if (sig !== expected) return 'Request signature mismatch'
    return undefined
  }
  const mock = await startHttpsMock<SumsubRequest>({ serverCert: options.serverCert }, (request) => {
    const reason = check(request)
    let answer: JsonAnswer
    const forced = failures.shift()
    if (forced !== undefined) {
      answer = { status: forced, json: { description: 'Service temporarily unavailable (failNext)', code: forced } }
    } else if (reason !== undefined) {
      answer = { status: 401, json: { description: reason, code: 401 } }
    } else {
      answer = { status: 200, json: { ok: true, method: request.method, url: request.url, bodyLength: request.body.length } }
    }
    const record: SumsubRequest = { ...request, signatureValid: reason === undefined, status: answer.status }
    if (reason !== undefined) record.reason = reason
    return { record, answer }
  })
  return {
    ...mock,
    failNext (count, status = 503) {
      for (let i = 0; i < count; i++) failures.push(status)
    },
  }
}

// Node joins repeated custom headers into one string; the array case is only for set-cookie
function header (request: VendorRequest, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value.join(',') : value
}
