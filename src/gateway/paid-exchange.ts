// The x402 side of one paid request (docs/payments.md): read the client's payment,
// claim it against replay, verify it, and after the partner answered below 400 hold that answer
// until the payment settles, so no byte of a paid response reaches a client that did not pay.
// ProxyExchange owns the sockets and calls these steps in order; only paid policies build one.
import type { Logger } from 'pino'
import type { CompiledPayment, Price } from '../payments/compile-payment.js'
import type { SettleOutcome } from '../payments/facilitator-answers.js'
import type { PaymentServices } from '../payments/payment-services.js'
import { paymentRequired, type PaymentRequiredAnswer } from '../payments/payment-required.js'
import { readPayment, type AcceptedPayment } from '../payments/read-payment.js'
import { PAYMENT_REPLAYED_REASON } from '../payments/replay-guard.js'

/** why a payment stopped the request before forwarding; null from claimAndVerify: go ahead */
export type PaymentRefusal =
  | { readonly code: 'payment_required'; readonly reason: string }
  /** the facilitator gave no usable answer: 502, never a free pass */
  | { readonly code: 'upstream_error'; readonly reason: string }
  /** the replay guard's store did not answer: 503 */
  | { readonly code: 'governance_unavailable'; readonly err: unknown }

/** the partner's answer, held while the payment settles */
interface HeldAnswer {
  readonly status: number
  readonly statusText: string
  readonly headers: string[]
}

export class PaidExchange {
  readonly #services: PaymentServices
  readonly #logger: Logger
  readonly #payment: CompiledPayment
  readonly #price: Price
  readonly #resourceUrl: string
  #accepted: AcceptedPayment | null = null
  #claimed = false
  #held: HeldAnswer | null = null
  #chunks: Buffer[] = []
  #bytes = 0

  constructor (services: PaymentServices, logger: Logger, payment: CompiledPayment, price: Price, resourceUrl: string) {
    this.#services = services
    this.#logger = logger
    this.#payment = payment
    this.#price = price
    this.#resourceUrl = resourceUrl
  }

  /** the smallest units this request costs */
  get amount (): string {
    return this.#price.requirement.amount
  }

  get version (): 1 | 2 {
    return this.#accepted!.version
  }

  /** Reads PAYMENT-SIGNATURE or X-PAYMENT; returns why it cannot pay, or null when it may. */
  read (signature: string | undefined, xPayment: string | undefined): string | null {
    const read = readPayment(this.#payment, this.#price, signature, xPayment, this.#resourceUrl)
    if (!read.ok) return read.reason
    this.#accepted = read.payment
    return null
  }

  /** the 402 answer's header value and body */
  required (reason: string, requestId: string): PaymentRequiredAnswer {
    return paymentRequired(this.#payment, this.#price, this.#resourceUrl, reason, requestId)
  }

  /**
   * Claims the payment (once across every node), then has the facilitator verify it. A claim
   * comes first so concurrent duplicates cost one facilitator call, not one each.
   */
  async claimAndVerify (): Promise<PaymentRefusal | null> {
    const accepted = this.#accepted!
    let claimed: boolean
    try {
      claimed = await this.#services.replayGuard.claim(accepted.replayKey, accepted.claimTtlMs)
    } catch (err) {
      return { code: 'governance_unavailable', err }
    }
    if (!claimed) return { code: 'payment_required', reason: PAYMENT_REPLAYED_REASON }
    this.#claimed = true
    const verified = await this.#services.facilitators.verify(accepted)
    if (verified.ok) return null
    this.release()
    return verified.code === 'payment_invalid'
      ? { code: 'payment_required', reason: verified.reason }
      : { code: 'upstream_error', reason: verified.reason }
  }

  /** The request never reached the partner: the payer may send the same payment again. */
  release (): void {
    if (!this.#claimed) return
    this.#claimed = false
    this.#services.replayGuard.release(this.#accepted!.replayKey).catch((err: unknown) => {
      // the payer's retry is refused as a replay until the claim expires; nothing is lost
      this.#logger.warn({ err: err instanceof Error ? err.name : typeof err }, 'payment claim release failed')
    })
  }

  /** Starts holding the partner's answer; false when its Content-Length is over the bound. */
  hold (status: number, statusText: string, headers: string[], contentLength: number): boolean {
    if (contentLength > this.#services.responseBufferBytes) return false
    this.#held = { status, statusText, headers }
    return true
  }

  get held (): HeldAnswer | null {
    return this.#held
  }

  /** false once the held body passes the bound */
  add (chunk: Buffer): boolean {
    this.#bytes += chunk.length
    if (this.#bytes > this.#services.responseBufferBytes) return false
    this.#chunks.push(chunk)
    return true
  }

  /** the attempt broke off before its end: nothing held any more (a retry may follow) */
  drop (): void {
    this.#held = null
    this.#chunks = []
    this.#bytes = 0
  }

  body (): Buffer {
    return Buffer.concat(this.#chunks, this.#bytes)
  }

  settle (): Promise<SettleOutcome> {
    return this.#services.facilitators.settle(this.#accepted!)
  }
}
