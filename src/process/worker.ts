// A cluster worker: serves the proxy port. Everything the data plane uses is built here and
// handed down through constructors.
import { once } from 'node:events'
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import { VirtualKeyCodec } from '../keys/virtual-key.js'
import { InlineSecretCipher } from '../secrets/inline-cipher.js'
import { SecretResolver } from '../secrets/secret-resolver.js'
import { EnvSecretProvider } from '../secrets/env-secret-provider.js'
import { FileSecretProvider } from '../secrets/file-secret-provider.js'
import { InlineSecretProvider } from '../secrets/inline-secret-provider.js'
import { openControlStore } from '../store/open-control-store.js'
import { KeyCache } from '../gateway/key-cache.js'
import { KeyResolver } from '../gateway/key-resolver.js'
import { PartnerDirectory } from '../gateway/partner-directory.js'
import { UpstreamPools } from '../gateway/upstream-pools.js'
import { createGatewayServer } from '../gateway/gateway-server.js'
import { join } from 'node:path'
import { Cluster } from 'ioredis'
import { createRedisClient, type RedisClient } from '../store/redis/redis-client.js'
import { RedisAdmissionStore } from '../store/redis/redis-admission-store.js'
import { openSqliteAdmissionStore } from '../store/sqlite/sqlite-admission-store.js'
import { EMBEDDED_DB_FILE } from '../store/open-control-store.js'
import type { AdmissionStore } from '../limits/admission.js'
import { GatewayMetrics } from '../telemetry/gateway-metrics.js'
import { serveWorkerMetrics } from '../telemetry/cluster-metrics.js'
import { AccessLog } from '../telemetry/access-log.js'
import { ExchangeReporter } from '../gateway/exchange-report.js'
import { isPrimaryToWorker } from './messages.js'

/** Redis may still be starting: wait a little, then serve anyway (requests fail closed, /ready says 503). */
async function waitForRedis (redis: RedisClient, logger: Logger): Promise<void> {
  if (redis.status === 'ready') return
  const ready = once(redis, 'ready').then(() => true)
  const timeout = new Promise<boolean>((resolve) => setTimeout(resolve, 5_000, false).unref())
  if (!await Promise.race([ready, timeout])) logger.warn('Redis is not reachable yet; limits fail closed until it is')
}

export async function runWorker (config: Config, logger: Logger): Promise<void> {
  const store = openControlStore(config, { connections: 4 })
  const pools = new UpstreamPools()
  const cache = new KeyCache({ max: config.keyCacheMax, ttlMs: config.keyCacheTtlMs })
  const keys = new KeyResolver({
    codec: new VirtualKeyCodec(config.hmacSecret!),
    cache,
    store,
    compile: {
      secrets: new SecretResolver([
        new EnvSecretProvider(),
        new FileSecretProvider(),
        new InlineSecretProvider(config.masterKey === null ? null : new InlineSecretCipher(config.masterKey)),
      ]),
      pools,
      logger,
    },
  })
  const partners = new PartnerDirectory(store, config.keyCacheTtlMs)
  const redis = config.redisUrl === null ? null : createRedisClient(config.redisUrl, { commandTimeoutMs: config.governanceTimeoutMs })
  redis?.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis error'))
  if (redis !== null) await waitForRedis(redis, logger)
  const admission: AdmissionStore = redis === null
    ? openSqliteAdmissionStore(join(config.dataDir, EMBEDDED_DB_FILE), { busyTimeoutMs: config.governanceTimeoutMs })
    : new RedisAdmissionStore(redis, { prefix: config.redisPrefix, cluster: redis instanceof Cluster })
  const ready = async (): Promise<void> => {
    await Promise.all([store.ping(), admission.ping()])
  }
  const metrics = new GatewayMetrics({ keyCache: () => cache.stats(), audit: () => null })
  serveWorkerMetrics(metrics.registry)
  const reporter = new ExchangeReporter({ audit: null, metrics, access: new AccessLog(logger, config.accessLogSample) })
  const server = createGatewayServer({ keys, partners, admission, reporter, metrics, logger, ready })

  let stopping = false
  async function shutdown (reason: string): Promise<void> {
    if (stopping) return
    stopping = true
    logger.info({ reason }, 'worker draining')
    server.close()
    // keep-alive sockets go idle as their last response ends; close each as soon as it does
    const sweep = setInterval(() => server.closeIdleConnections(), 50)
    sweep.unref()
    server.closeIdleConnections()
    const force = setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs)
    force.unref()
    if (server.listening) await once(server, 'close')
    await pools.close()
    await store.close()
    await admission.close()
    logger.flush()
    process.exit(0)
  }

  process.on('message', (message: unknown) => {
    if (!isPrimaryToWorker(message)) return
    if (message.type === 'shutdown') {
      void shutdown('primary asked')
      return
    }
    keys.invalidate(message.invalidation)
    if (message.invalidation.kind === 'partner' || message.invalidation.kind === 'all') partners.clear()
  })
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
  // the primary went away without telling us: stop rather than linger unmanaged
  process.on('disconnect', () => void shutdown('primary disconnected'))

  server.listen(config.port, config.host)
  await once(server, 'listening')
  logger.debug({ port: config.port }, 'worker listening')
}
