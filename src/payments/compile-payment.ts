// A policy's payment settings compiled once per key context: the requirement offered for each
// distinct price, already serialized for 402 answers, and the price rules as endpoint matchers
// (the same ones `costs` and `allow` use), so a request only walks the rules.
import { compileEndpoint, findEndpoint, type CompiledEndpoint } from '../http/endpoint-pattern.js'
import type { PaymentSettings } from './payment-settings.js'
import { v1NetworkName } from './v1-networks.js'
import type { PaymentRequirements } from './x402-types.js'

/** What one request costs: the requirement offered and checked for it. */
export interface Price {
  readonly requirement: Readonly<PaymentRequirements>
  /** JSON of `[requirement]`, spliced into every 402 answer for this price */
  readonly acceptsJson: string
}

export interface CompiledPayment {
  readonly settings: PaymentSettings
  /** facilitator_url without trailing slashes: `${facilitator}/verify` */
  readonly facilitator: string
  /** the network's x402 v1 name; null: X-PAYMENT cannot pay on this network */
  readonly v1Network: string | null
  /** JSON of `resource.description` and `resource.mimeType`, after the url */
  readonly resourceTailJson: string
  readonly rules: readonly CompiledEndpoint[]
  /** per rule; null where the rule's amount is "0" (free) */
  readonly rulePrices: readonly (Price | null)[]
  readonly defaultPrice: Price
}

export function compilePayment (settings: PaymentSettings): CompiledPayment {
  const byAmount = new Map<string, Price>()
  const priceOf = (amount: string): Price => {
    let price = byAmount.get(amount)
    if (price === undefined) {
      price = compilePrice(settings, amount)
      byAmount.set(amount, price)
    }
    return price
  }
  return Object.freeze({
    settings,
    facilitator: settings.facilitator_url.replace(/\/+$/, ''),
    v1Network: v1NetworkName(settings.network),
    // The proxy answers for whatever the partner serves, so there is no mime type to promise;
    // '' is what the x402 reference server sends when none is configured.
    resourceTailJson: `,"description":${JSON.stringify(settings.description ?? '')},"mimeType":""`,
    rules: Object.freeze(settings.prices.map((p) => compileEndpoint(p.method, p.path))),
    rulePrices: Object.freeze(settings.prices.map((p) => (p.amount === '0' ? null : priceOf(p.amount)))),
    defaultPrice: priceOf(settings.amount),
  })
}

function compilePrice (settings: PaymentSettings, amount: string): Price {
  const requirement: PaymentRequirements = Object.freeze({
    scheme: settings.scheme,
    network: settings.network as PaymentRequirements['network'],
    amount,
    asset: settings.asset,
    payTo: settings.pay_to,
    maxTimeoutSeconds: settings.max_timeout_seconds,
    extra: settings.extra,
  })
  return Object.freeze({ requirement, acceptsJson: JSON.stringify([requirement]) })
}

/** HOT PATH (paid policies): the first matching price rule's price, else the default; null = free */
export function priceFor (payment: CompiledPayment, method: string, path: string): Price | null {
  if (payment.rules.length === 0) return payment.defaultPrice
  const i = findEndpoint(payment.rules, method, path)
  return i === -1 ? payment.defaultPrice : payment.rulePrices[i]
}
