// Runs the misconfiguration check in the primary: at start, again shortly after every
// configuration change (this node's admin calls and other nodes' change notices), and once a
// minute (a secret file or mount can change under a running node). Each problem is logged
// once at error level when it appears and once at info when it is gone; the current list is
// what the admin port's GET /ready shows and relaykey_misconfigurations counts.
import type { Logger } from 'pino'
import { Gauge, type Registry } from 'prom-client'
import type { SecretResolver } from '../secrets/secret-resolver.js'
import type { ControlStore } from '../store/control-store.js'
import { findMisconfigurations, type Misconfiguration } from './misconfigurations.js'

/** changes usually come in bursts (a config apply): one check after the burst */
const SETTLE_MS = 250
const RECHECK_MS = 60_000

export interface MisconfigurationReport {
  /** when the last check finished (RFC 3339), null before the first */
  checked_at: string | null
  /** why the last check could not run (a store that did not answer), else null */
  check_error: string | null
  misconfigurations: Misconfiguration[]
}

export class MisconfigurationMonitor {
  readonly #store: ControlStore
  readonly #secrets: SecretResolver
  readonly #logger: Logger
  #report: MisconfigurationReport = { checked_at: null, check_error: null, misconfigurations: [] }
  #logged = new Map<string, Misconfiguration>()
  #running: Promise<void> | null = null
  #again = false
  #settle: NodeJS.Timeout | null = null
  #interval: NodeJS.Timeout | null = null
  #closed = false

  constructor (store: ControlStore, secrets: SecretResolver, logger: Logger) {
    this.#store = store
    this.#secrets = secrets
    this.#logger = logger
  }

  /** the first check (awaited at start), then one a minute */
  async start (): Promise<void> {
    await this.check()
    this.#interval = setInterval(() => { void this.check() }, RECHECK_MS)
    this.#interval.unref()
  }

  /** a configuration change: check again once the burst has settled */
  changed (): void {
    if (this.#settle !== null || this.#closed) return
    this.#settle = setTimeout(() => {
      this.#settle = null
      void this.check()
    }, SETTLE_MS)
    this.#settle.unref()
  }

  /** one check at a time; a call during one runs it once more afterwards */
  check (): Promise<void> {
    if (this.#closed) return Promise.resolve()
    if (this.#running !== null) {
      this.#again = true
      return this.#running
    }
    this.#running = this.#run().finally(() => {
      this.#running = null
      if (this.#again) {
        this.#again = false
        void this.check()
      }
    })
    return this.#running
  }

  report (): MisconfigurationReport {
    return this.#report
  }

  /** registers relaykey_misconfigurations (by partner and kind) in the primary's registry */
  register (registry: Registry): void {
    const monitor = this
    void new Gauge({
      name: 'relaykey_misconfigurations',
      help: 'Configuration problems the last start-up or change check found (GET /ready on the admin port lists them): kind credential (a secret that does not resolve, decrypt or fit) or partner (no usable credential for an environment its keys are in, an unreadable CA)',
      labelNames: ['partner', 'kind'],
      registers: [registry],
      collect () {
        this.reset()
        for (const m of monitor.#report.misconfigurations) this.inc({ partner: m.partner, kind: m.credential === null ? 'partner' : 'credential' })
      },
    })
  }

  /** no check starts after this; one running ends on its own (its store errors are only logged) */
  close (): void {
    this.#closed = true
    this.#again = false
    if (this.#settle !== null) clearTimeout(this.#settle)
    if (this.#interval !== null) clearInterval(this.#interval)
  }

  async #run (): Promise<void> {
    let found: Misconfiguration[]
    try {
      found = await findMisconfigurations(this.#store, this.#secrets)
    } catch (err) {
      // the stores' own health is /ready's other half; the last known problems stand meanwhile
      this.#report = { ...this.#report, check_error: (err as Error).message }
      this.#logger.warn({ err: (err as Error).message }, 'configuration check could not run; will try again')
      return
    }
    const now = new Map(found.map((m) => [identity(m), m]))
    for (const [id, m] of now) {
      if (this.#logged.has(id)) continue
      this.#logger.error({ partner: m.partner, environment: m.environment, credential_id: m.credential?.id ?? null, credential: m.credential?.name ?? null, reason: m.reason },
        m.credential === null ? 'partner misconfigured: its requests are answered 502 partner_misconfigured' : 'credential unusable: left out of rotation')
    }
    for (const [id, m] of this.#logged) {
      if (!now.has(id)) this.#logger.info({ partner: m.partner, environment: m.environment, credential_id: m.credential?.id ?? null, credential: m.credential?.name ?? null }, 'configuration problem resolved')
    }
    this.#logged = now
    this.#report = { checked_at: new Date().toISOString(), check_error: null, misconfigurations: found }
  }
}

function identity (m: Misconfiguration): string {
  return JSON.stringify([m.partner, m.environment, m.credential?.id ?? null, m.reason])
}
