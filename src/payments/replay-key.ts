// What makes two payment payloads the same payment, and how long the replay guard must
// remember one.
//
// The key is NOT a hash of the header or of the whole JSON: a payer could re-encode it, reorder
// members or add ones the facilitator ignores, and get a "new" payment that settles the same
// signed transfer. It hashes what the chain itself refuses to use twice:
//   - EIP-3009 (`exact` on EVM): `authorization.from` + `authorization.nonce`, unique per token
//     contract by that contract's rule; keying on them also ignores ECDSA signature malleability
//   - Permit2: `permit2Authorization.from` + `permit2Authorization.nonce`, likewise
//   - anything else (e.g. a signed Solana transaction): the canonical JSON of `payload`
// prefixed with scheme, network and asset of the requirement it was matched against.
import { createHash } from 'node:crypto'
import { isJsonObject, type JsonObject } from './json-object.js'

/** a claim outlives any verify (3 attempts of at most ~12 s), so a release never frees someone else's claim */
const MIN_CLAIM_MS = 120_000
/** bounds what one payer-chosen expiry can make the store keep; the chain still refuses a settled nonce */
const MAX_CLAIM_MS = 86_400_000
/** the facilitator may run on a clock a little behind ours */
const CLOCK_SKEW_MS = 30_000
const DECIMAL = /^[0-9]{1,78}$/
const HEX = /^0x[0-9a-fA-F]{1,64}$/
const SECONDS = /^[0-9]{1,12}$/

/** sha256 hex of the payment's identity */
export function replayKey (scheme: string, network: string, asset: string, payload: JsonObject): string {
  return createHash('sha256')
    .update(`${scheme}\n${network}\n${asset.toLowerCase()}\n${identity(payload)}`)
    .digest('hex')
}

/**
 * How long the payment stays usable, so how long its claim must last: its own expiry when it
 * states one (EIP-3009 `validBefore`, Permit2 `deadline`, in unix seconds), else the offer's
 * max_timeout_seconds, kept between MIN_CLAIM_MS and MAX_CLAIM_MS.
 */
export function claimTtlMs (payload: JsonObject, maxTimeoutSeconds: number, nowMs: number): number {
  let ttl = maxTimeoutSeconds * 1000
  const expiry = expiryMs(payload)
  if (expiry !== null && expiry - nowMs + CLOCK_SKEW_MS > ttl) ttl = expiry - nowMs + CLOCK_SKEW_MS
  return Math.min(Math.max(ttl, MIN_CLAIM_MS), MAX_CLAIM_MS)
}

function identity (payload: JsonObject): string {
  const eip3009 = nonceOf(payload.authorization)
  if (eip3009 !== null) return `eip3009:${eip3009}`
  const permit2 = nonceOf(payload.permit2Authorization)
  if (permit2 !== null) return `permit2:${permit2}`
  return `payload:${canonicalJson(payload)}`
}

/** `from:nonce` with the nonce as a decimal integer, so 0x0A, 0x0a and 10 are one nonce */
function nonceOf (authorization: unknown): string | null {
  if (!isJsonObject(authorization)) return null
  const { from, nonce } = authorization
  if (typeof from !== 'string' || typeof nonce !== 'string') return null
  if (!DECIMAL.test(nonce) && !HEX.test(nonce)) return null
  return `${from.toLowerCase()}:${BigInt(nonce).toString()}`
}

function expiryMs (payload: JsonObject): number | null {
  const seconds = isJsonObject(payload.authorization)
    ? payload.authorization.validBefore
    : isJsonObject(payload.permit2Authorization) ? payload.permit2Authorization.deadline : undefined
  if (typeof seconds === 'number' && Number.isSafeInteger(seconds) && seconds >= 0) return seconds * 1000
  if (typeof seconds === 'string' && SECONDS.test(seconds)) return Number(seconds) * 1000
  return null
}

/** JSON with object members sorted by name at every level */
function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (isJsonObject(value)) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}
