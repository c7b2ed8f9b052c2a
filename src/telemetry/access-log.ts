// One JSON access line per request: refusals always, forwarded requests sampled
// (RELAYKEY_ACCESS_LOG_SAMPLE, 0..1). Never headers, bodies or query strings.
import type { Logger } from 'pino'

export interface AccessEntry {
  request_id: string
  key_id: string | null
  partner: string
  method: string
  path: string
  status: number
  outcome: string
  latency_ms: number
  upstream_latency_ms: number | null
}

export class AccessLog {
  readonly #logger: Logger
  readonly #sample: number
  readonly #enabled: boolean

  constructor (logger: Logger, sampleRate: number) {
    this.#logger = logger
    this.#sample = sampleRate
    // checked once: with logging above info, an access line costs nothing at all. A sample
    // rate of 0 still logs every refusal (write() samples forwarded requests only).
    this.#enabled = logger.isLevelEnabled('info')
  }

  write (entry: AccessEntry): void {
    if (!this.#enabled) return
    if (entry.outcome === 'forwarded' && this.#sample < 1 && (this.#sample === 0 || Math.random() >= this.#sample)) return
    this.#logger.info(entry, 'access')
  }
}
