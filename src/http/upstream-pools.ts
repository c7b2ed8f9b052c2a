// One undici Pool per partner origin, connect timeout and TLS identity (undici fixes both per
// Pool): a partner's own CA, and for mTLS a client certificate, so connections are never shared
// between credentials with different certificates. Pools outlive key contexts: a cache refresh
// must not open new connections.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { rootCertificates } from 'node:tls'
import { buildConnector, Pool } from 'undici'
import { EgressPolicy, EgressRefusedError } from './egress-policy.js'

export interface PoolSettings {
  connectTimeoutMs: number
  /** PEM: CAs trusted besides the system's (the partner's `tls.ca`) */
  ca?: string | null
  /** PEM: the client certificate and key presented (mTLS) */
  cert?: string | null
  key?: string | null
}

/**
 * NODE_EXTRA_CA_CERTS, which Node adds to its default store but which an explicit `ca` option
 * replaces: read once, so a partner's own CA adds to what every other partner trusts
 */
let extraCas: string[] | null = null
function extraCaCertificates (): string[] {
  if (extraCas !== null) return extraCas
  const file = process.env.NODE_EXTRA_CA_CERTS
  extraCas = []
  if (file !== undefined && file !== '') {
    try {
      extraCas = [readFileSync(file, 'utf8')]
    } catch {
      // Node warned about it at start and uses none: the same here
    }
  }
  return extraCas
}

export class UpstreamPools {
  readonly #pools = new Map<string, Pool>()
  readonly #connections: number
  readonly #egress: EgressPolicy

  constructor (options: { connectionsPerOrigin?: number; egress?: EgressPolicy } = {}) {
    this.#connections = options.connectionsPerOrigin ?? 256
    this.#egress = options.egress ?? new EgressPolicy(null)
  }

  get (origin: string, settings: PoolSettings): Pool {
    const tls = settings.ca == null && settings.cert == null ? '' : ' ' + createHash('sha256').update(`${settings.ca}\0${settings.cert}\0${settings.key}`).digest('hex')
    const id = `${origin} ${settings.connectTimeoutMs}${tls}`
    let pool = this.#pools.get(id)
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.#connections,
        pipelining: 1,
        connect: this.#connector(settings),
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 600_000,
      })
      this.#pools.set(id, pool)
    }
    return pool
  }

  /**
   * undici's connector with the egress policy in front: names resolve through its lookup (only
   * allowed addresses), IP literals, which net.connect never looks up, are checked here
   */
  #connector (settings: PoolSettings): buildConnector.connector {
    const egress = this.#egress
    // verification is always on (no option turns it off); SNI and the hostname check are Node's
    const tls: Record<string, unknown> = { minVersion: 'TLSv1.2' }
    // the partner's CA is trusted besides the system's, as NODE_EXTRA_CA_CERTS would do process-wide
    if (settings.ca != null) tls.ca = [...rootCertificates, ...extraCaCertificates(), settings.ca]
    if (settings.cert != null) tls.cert = settings.cert
    if (settings.key != null) tls.key = settings.key
    const connect = buildConnector({ timeout: settings.connectTimeoutMs, lookup: egress.lookup, ...tls } as buildConnector.BuildOptions)
    return (options, callback) => {
      const refusal = egress.hostRefusal(options.hostname)
      if (refusal !== null) return callback(new EgressRefusedError(`egress refused: ${refusal}`), null)
      return connect(options, callback)
    }
  }

  /** lets in-flight requests finish, then closes every connection */
  async close (): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.close()))
    this.#pools.clear()
  }
}
