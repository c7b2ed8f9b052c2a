// A client's payment: `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1), decoded and matched against
// the requirement offered for this request's price. What goes to the facilitator afterwards is
// always OUR requirement, never the client's echo of it: a payer cannot name its own price.
import type { CompiledPayment, Price } from './compile-payment.js'
import { isJsonObject } from './json-object.js'
import { PAYMENT_REQUIRED_REASON } from './payment-required.js'
import { claimTtlMs, replayKey } from './replay-key.js'
import { decodeHeaderJson } from './x402-headers.js'
import type { PaymentPayload, PaymentPayloadV1, PaymentRequirements, PaymentRequirementsV1 } from './x402-types.js'

interface Accepted {
  /** where verify and settle go: `${facilitator}/verify` */
  readonly facilitator: string
  /** sha256 hex naming the payment for the replay guard (replay-key.ts) */
  readonly replayKey: string
  /** how long the replay guard must hold it */
  readonly claimTtlMs: number
}

interface AcceptedV2 extends Accepted {
  readonly version: 2
  /** as the client sent it; forwarded to the facilitator untouched */
  readonly payload: PaymentPayload
  readonly requirements: Readonly<PaymentRequirements>
}

interface AcceptedV1 extends Accepted {
  readonly version: 1
  readonly payload: PaymentPayloadV1
  readonly requirements: PaymentRequirementsV1
}

/** A well-formed payment for what this request costs; the facilitator decides whether it is good. */
export type AcceptedPayment = AcceptedV2 | AcceptedV1

/** refused: answer 402 with paymentRequired(…, reason, …) */
export type ReadPaymentResult =
  | { readonly ok: true; readonly payment: AcceptedPayment }
  | { readonly ok: false; readonly reason: string }

/** what a v2 payment's `accepted` must repeat exactly; the rest is the facilitator's to judge */
const MATCHED = ['scheme', 'network', 'amount', 'asset', 'payTo'] as const

/**
 * `signature` and `xPayment` are the request's header values (undefined when absent); a
 * PAYMENT-SIGNATURE wins over an X-PAYMENT. `resourceUrl` as for paymentRequired: v1
 * requirements name the resource.
 */
export function readPayment (
  payment: CompiledPayment, price: Price, signature: string | undefined, xPayment: string | undefined, resourceUrl: string,
): ReadPaymentResult {
  if (signature !== undefined) return readV2(payment, price, signature)
  if (xPayment !== undefined) return readV1(payment, price, xPayment, resourceUrl)
  return { ok: false, reason: PAYMENT_REQUIRED_REASON }
}

function readV2 (payment: CompiledPayment, price: Price, header: string): ReadPaymentResult {
  const p = decodeHeaderJson(header)
  if (p === undefined) return refused('PAYMENT-SIGNATURE is not base64 JSON')
  if (!isJsonObject(p) || p.x402Version !== 2) return refused('PAYMENT-SIGNATURE must carry an x402Version 2 payment payload')
  if (!isJsonObject(p.accepted)) return refused('Malformed payment payload: accepted must be an object')
  if (!isJsonObject(p.payload)) return refused('Malformed payment payload: payload must be an object')
  const offered = price.requirement
  for (let i = 0; i < MATCHED.length; i++) {
    const field = MATCHED[i]!
    if (p.accepted[field] !== offered[field]) return refused(`No matching payment requirements: accepted.${field} is not what this endpoint asks`)
  }
  return {
    ok: true,
    payment: {
      version: 2,
      payload: p as PaymentPayload,
      requirements: offered,
      facilitator: payment.facilitator,
      replayKey: replayKey(offered.scheme, offered.network, offered.asset, p.payload),
      claimTtlMs: claimTtlMs(p.payload, offered.maxTimeoutSeconds, Date.now()),
    },
  }
}

// A v1 payload names only scheme and network; amount, asset and payTo sit inside the signed,
// scheme-specific part, which the facilitator checks against the requirements sent with it.
function readV1 (payment: CompiledPayment, price: Price, header: string, resourceUrl: string): ReadPaymentResult {
  const p = decodeHeaderJson(header)
  if (p === undefined) return refused('X-PAYMENT is not base64 JSON')
  if (!isJsonObject(p) || p.x402Version !== 1) return refused('X-PAYMENT must carry an x402Version 1 payment payload')
  if (!isJsonObject(p.payload)) return refused('Malformed payment payload: payload must be an object')
  const offered = price.requirement
  if (p.scheme !== offered.scheme) return refused('No matching payment requirements: scheme is not what this endpoint asks')
  if (payment.v1Network === null) return refused(`x402 v1 has no name for ${offered.network}: pay with PAYMENT-SIGNATURE (x402 v2)`)
  if (p.network !== payment.v1Network && p.network !== offered.network) {
    return refused('No matching payment requirements: network is not what this endpoint asks')
  }
  const settings = payment.settings
  return {
    ok: true,
    payment: {
      version: 1,
      payload: p as PaymentPayloadV1,
      requirements: {
        scheme: offered.scheme,
        // the name the payer used, which is the one its facilitator knows
        network: p.network as PaymentRequirementsV1['network'],
        maxAmountRequired: offered.amount,
        resource: resourceUrl,
        description: settings.description ?? '',
        mimeType: '',
        outputSchema: {},
        payTo: offered.payTo,
        maxTimeoutSeconds: offered.maxTimeoutSeconds,
        asset: offered.asset,
        extra: offered.extra,
      },
      facilitator: payment.facilitator,
      replayKey: replayKey(offered.scheme, offered.network, offered.asset, p.payload),
      claimTtlMs: claimTtlMs(p.payload, offered.maxTimeoutSeconds, Date.now()),
    },
  }
}

function refused (reason: string): ReadPaymentResult {
  return { ok: false, reason }
}
