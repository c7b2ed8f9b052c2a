// A policy's x402 `payment` settings (docs/payments.md): their stored shape and their validation at
// the admin API, the one place they enter. Everything downstream trusts the normalized value.
import { ValidationError } from '../errors.js'
import { PAYMENT_AMOUNT } from '../audit/audit-event.js'
import { endpointMethod, endpointPath } from '../validation/endpoint-rule.js'
import { child, item } from '../validation/field-path.js'
import { httpUrl } from '../validation/http-url.js'
import { array, integer, label, matching, NO_NUL, object, onlyFields, type JsonObject } from '../validation/json-value.js'

// `type`, not `interface`: the stores keep `payment` as an opaque Record<string, unknown>, and
// only object type aliases are assignable to an index signature.
export type PaymentSettings = {
  /** smallest units of `asset`, as digits */
  amount: string
  asset: string
  /** CAIP-2, e.g. eip155:84532 */
  network: string
  pay_to: string
  facilitator_url: string
  scheme: string
  max_timeout_seconds: number
  description: string | null
  /**
   * scheme-specific `extra` of every offered requirement; EIP-3009 (`exact` on EVM) clients
   * need the token's EIP-712 domain here: `{"name": "USDC", "version": "2"}`
   */
  extra: JsonObject
  /** per-endpoint amounts, first match wins; "0" makes the matching endpoints free */
  prices: PriceRule[]
}

export type PriceRule = {
  method: string
  path: string
  amount: string
}

const FIELDS = new Set([
  'amount', 'asset', 'network', 'pay_to', 'facilitator_url', 'scheme', 'max_timeout_seconds', 'description', 'extra', 'prices',
])
const PRICE_FIELDS = new Set(['method', 'path', 'amount'])
// uint256 has at most 78 digits; no leading zeros, because offered and accepted amounts are
// compared as strings
const AMOUNT = /^[1-9][0-9]{0,77}$/
// CAIP-2: namespace [-a-z0-9]{3,8}, reference [-_a-zA-Z0-9]{1,32}
const NETWORK = /^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$/
const EVM_CHAIN = /^eip155:[0-9]{1,32}$/
const EVM_ADDRESS = /^0x[0-9a-fA-F]{40}$/
const ADDRESS = /^[\x21-\x7e]{1,128}$/
const SCHEME = /^[a-z][a-z0-9_-]{0,31}$/
const MAX_PRICES = 1000
const MAX_EXTRA_JSON = 4096
const DEFAULT_SCHEME = 'exact'
const DEFAULT_TIMEOUT_SECONDS = 60
const MAX_TIMEOUT_SECONDS = 86_400

/** The normalized settings, or null (no payment) when absent or null. */
export function validatePaymentSettings (value: unknown, field: string): PaymentSettings | null {
  if (value === undefined || value === null) return null
  const o = object(value, field)
  onlyFields(o, FIELDS, field)
  const network = matching(o.network, child(field, 'network'), NETWORK, 'a CAIP-2 chain id such as eip155:84532')
  const evm = network.startsWith('eip155:')
  if (evm && !EVM_CHAIN.test(network)) throw new ValidationError(child(field, 'network'), 'must be eip155:<decimal chain id>')
  return {
    amount: matching(o.amount, child(field, 'amount'), AMOUNT, "a positive whole number of the asset's smallest unit, as a string of digits"),
    asset: address(o.asset, child(field, 'asset'), evm),
    network,
    pay_to: address(o.pay_to, child(field, 'pay_to'), evm),
    facilitator_url: facilitatorUrl(o.facilitator_url, child(field, 'facilitator_url')),
    scheme: o.scheme === undefined || o.scheme === null
      ? DEFAULT_SCHEME
      : matching(o.scheme, child(field, 'scheme'), SCHEME, "a lowercase x402 scheme name such as 'exact'"),
    max_timeout_seconds: o.max_timeout_seconds === undefined || o.max_timeout_seconds === null
      ? DEFAULT_TIMEOUT_SECONDS
      : integer(o.max_timeout_seconds, child(field, 'max_timeout_seconds'), 1, MAX_TIMEOUT_SECONDS),
    description: o.description === undefined || o.description === null ? null : label(o.description, child(field, 'description'), 1024),
    extra: extra(o.extra, child(field, 'extra')),
    prices: prices(o.prices, child(field, 'prices')),
  }
}

function address (value: unknown, field: string, evm: boolean): string {
  return evm
    ? matching(value, field, EVM_ADDRESS, 'a 0x-prefixed 20-byte hex address on an eip155 network')
    : matching(value, field, ADDRESS, 'at most 128 printable characters without spaces')
}

/** absolute http(s); `/verify`, `/settle` and `/supported` are appended, so no query or fragment */
function facilitatorUrl (value: unknown, field: string): string {
  httpUrl(value, field)
  return value as string
}

function extra (value: unknown, field: string): JsonObject {
  if (value === undefined || value === null) return {}
  const o = object(value, field)
  // it is repeated in every 402 answer and PAYMENT-REQUIRED header
  if (JSON.stringify(o).length > MAX_EXTRA_JSON) throw new ValidationError(field, `must be at most ${MAX_EXTRA_JSON} characters as JSON`)
  if (holdsNul(o)) throw new ValidationError(field, NO_NUL)
  return o
}

function prices (value: unknown, field: string): PriceRule[] {
  if (value === undefined || value === null) return []
  return array(value, field, MAX_PRICES).map((rule, i) => {
    const f = item(field, i)
    const o = object(rule, f)
    onlyFields(o, PRICE_FIELDS, f)
    return {
      method: endpointMethod(o.method, child(f, 'method')),
      path: endpointPath(o.path, child(f, 'path')),
      amount: matching(o.amount, child(f, 'amount'), PAYMENT_AMOUNT, 'a whole number of the smallest unit as a string of digits; "0" makes the endpoint free'),
    }
  })
}

/** a NUL in any member name or string, however deep (PostgreSQL's jsonb refuses it) */
function holdsNul (value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000')
  if (typeof value !== 'object' || value === null) return false
  if (Array.isArray(value)) return value.some(holdsNul)
  return Object.entries(value).some(([name, member]) => name.includes('\u0000') || holdsNul(member))
}
