// What a worker needs to take x402 payments: the facilitator client, the replay guard of the
// mode's store, and how much of a paid response may be held while its payment settles. Built
// once per worker; a deployment without paid policies pays one idle object for it.
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import { compilePayment, type CompiledPayment } from './compile-payment.js'
import { FacilitatorClient } from './facilitator-client.js'
import type { PaymentSettings } from './payment-settings.js'
import type { PaymentReplayGuard } from './replay-guard.js'

export class PaymentServices {
  readonly facilitators: FacilitatorClient
  readonly replayGuard: PaymentReplayGuard
  /** largest upstream answer held back until its payment settles (RELAYKEY_PAYMENT_BUFFER_BYTES) */
  readonly responseBufferBytes: number
  /** RELAYKEY_PUBLIC_URL, or null */
  readonly #publicUrl: string | null
  readonly #closeGuard: (() => Promise<void>) | null
  /** facilitator, scheme and network already checked against GET /supported by this worker */
  readonly #checked = new Set<string>()

  /** `replayGuard`: the claims store the process shell chose (process/open-replay-guard.ts); closed with these services when it has a close() */
  constructor (config: Pick<Config, 'paymentBufferBytes' | 'publicUrl'>, logger: Logger, replayGuard: PaymentReplayGuard & { close?: () => Promise<void> }) {
    this.facilitators = new FacilitatorClient({ logger })
    this.responseBufferBytes = config.paymentBufferBytes
    this.#publicUrl = config.publicUrl
    this.replayGuard = replayGuard
    this.#closeGuard = replayGuard.close === undefined ? null : () => replayGuard.close!()
  }

  /**
   * The URL the client asked for, as a 402 names it (`resource.url`): RELAYKEY_PUBLIC_URL and
   * the request target when set, else http:// and the request's Host — which behind a TLS
   * terminator or a path-routing load balancer is not where the client went.
   */
  resourceUrl (host: string, target: string): string {
    return this.#publicUrl === null ? `http://${host}${target}` : this.#publicUrl + target
  }

  /** a policy's payment settings, compiled for its key contexts; checks its facilitator once */
  compile (settings: PaymentSettings): CompiledPayment {
    const payment = compilePayment(settings)
    const id = `${payment.facilitator} ${settings.scheme} ${settings.network}`
    if (!this.#checked.has(id)) {
      this.#checked.add(id)
      void this.facilitators.checkSupported(payment)
    }
    return payment
  }

  async close (): Promise<void> {
    await this.facilitators.close()
    await this.#closeGuard?.()
  }
}
