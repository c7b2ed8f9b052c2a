// A cluster worker: serves the proxy port. Everything the data plane uses is built here and
// handed down through constructors.
import { once } from 'node:events'
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import { VirtualKeyCodec } from '../keys/virtual-key.js'
import { openControlStore } from '../store/open-control-store.js'
import { answerWithin } from '../store/answer-within.js'
import { errorSummary } from '../errors.js'
import { KeyCache } from '../gateway/key-cache.js'
import { SharedPolicyRoutes } from '../gateway/shared-policy-routes.js'
import { KeyResolver } from '../gateway/key-resolver.js'
import { PartnerDirectory } from '../gateway/partner-directory.js'
import { EgressPolicy } from '../http/egress-policy.js'
import { UpstreamPools } from '../http/upstream-pools.js'
import { InFlightCounts } from '../limits/in-flight-counts.js'
import { PartnerReliability } from '../reliability/partner-reliability.js'
import { PaymentServices } from '../payments/payment-services.js'
import { createGatewayServer } from '../gateway/gateway-server.js'
import { openAdmissionStore } from './open-admission-store.js'
import { openDataPlaneRedis } from './data-plane-redis.js'
import { LeasedAdmission } from '../limits/leased-admission.js'
import { startAuditPipeline } from '../audit/start-audit-pipeline.js'
import { GatewayMetrics } from '../telemetry/gateway-metrics.js'
import { processMetrics, serveWorkerMetrics } from '../telemetry/cluster-metrics.js'
import { AccessLog } from '../telemetry/access-log.js'
import { ExchangeReporter } from '../gateway/exchange-report.js'
import { isPrimaryToWorker } from './messages.js'
import { TokenSources } from '../partner-auth/token-sources.js'
import { SignedBodyMemory } from '../partner-auth/signed-body-memory.js'
import { TokenSeal } from '../partner-auth/shared-tokens.js'
import { RedisSharedTokens } from '../store/redis/redis-shared-tokens.js'
import { SqliteSharedTokens } from '../store/sqlite/sqlite-shared-tokens.js'
import { EMBEDDED_DB_FILE } from '../store/open-control-store.js'
import { join } from 'node:path'
import { secretsOfConfig } from './secrets-of-config.js'
import { openReplayGuard } from './open-replay-guard.js'

export async function runWorker (config: Config, logger: Logger): Promise<void> {
  // A stop asked for while the worker is still starting (opening stores, claiming audit logs)
  // is kept and honoured once there is something to drain: the primary's SIGTERM (or a
  // disconnect) must never be lost, or it waits out the grace period and kills the worker.
  let stop: ((reason: string) => void) | null = null
  let stopAsked: string | null = null
  const askStop = (reason: string): void => {
    if (stop !== null) stop(reason)
    else stopAsked ??= reason
  }
  process.on('SIGTERM', () => askStop('SIGTERM'))
  process.on('SIGINT', () => askStop('SIGINT'))
  // the primary went away without telling us: stop rather than linger unmanaged
  process.on('disconnect', () => askStop('primary disconnected'))

  const store = openControlStore(config, { connections: 4, logger })
  const pools = new UpstreamPools({ egress: new EgressPolicy(config.egressAllow) })
  // one data-plane Redis connection for limits and payment claims (distributed mode)
  const redis = config.redisUrl === null ? null : await openDataPlaneRedis(config, logger)
  const payments = new PaymentServices(config, logger, openReplayGuard(config, redis))
  // OAuth2 partners' access tokens: one per credential for the whole deployment
  const seal = new TokenSeal(config.hmacSecret!)
  const tokens = new TokenSources(redis === null
    ? new SqliteSharedTokens(join(config.dataDir, EMBEDDED_DB_FILE), seal)
    : new RedisSharedTokens(redis, config.redisPrefix, seal), seal, logger)
  const reliability = new PartnerReliability({ workers: config.workers, replayBufferBytes: config.retryBufferBytes })
  const cache = new KeyCache({ max: config.keyCacheMax, ttlMs: config.keyCacheTtlMs })
  const keys = new KeyResolver({
    codec: new VirtualKeyCodec(config.hmacSecret!),
    cache,
    // one entry per policy and environment in use: far fewer than keys
    policyRoutes: new SharedPolicyRoutes({ max: config.keyCacheMax, ttlMs: config.keyCacheTtlMs }),
    store,
    loadTimeoutMs: config.keyLoadTimeoutMs,
    compile: {
      secrets: secretsOfConfig(config),
      pools,
      tokens,
      reliability,
      payments,
      logger,
    },
  })
  const partners = new PartnerDirectory(store, config.keyCacheTtlMs, config.keyLoadTimeoutMs)
  const admission = new LeasedAdmission(await openAdmissionStore(config, logger, redis ?? undefined), { logger, enabled: config.leasesEnabled })
  // a probe gets its 503 in the time a key lookup may take, not when a stalled connection gives up
  const notReady = `the stores did not answer within ${config.keyLoadTimeoutMs} ms`
  const ready = async (): Promise<void> => {
    await answerWithin(Promise.all([store.ping(), admission.ping()]), config.keyLoadTimeoutMs, notReady)
  }
  const audit = config.auditEnabled ? await startAuditPipeline(config, logger) : null
  const signedBodies = new SignedBodyMemory(config.signedBodyMemoryBytes)
  const metrics = new GatewayMetrics({ signedBodies: () => signedBodies.held(), keyCache: () => cache.stats(), reliability: () => reliability.snapshot(), audit: () => audit?.stats() ?? null, leases: admission })
  // the data-plane metrics and this process's CPU, memory, event loop and GC: the primary merges
  // each by its aggregator over the workers (cluster-metrics.ts, docs/operations.md)
  serveWorkerMetrics(metrics.registry, processMetrics())
  const reporter = new ExchangeReporter({ audit, metrics, access: new AccessLog(logger, config.accessLogSample) })
  const server = createGatewayServer({
    keys, partners, admission, payments, concurrency: new InFlightCounts(config.workers), clientStallMs: config.clientIdleTimeoutMs, reporter, metrics, logger, ready,
    signedBodies,
  }, {
    headersTimeoutMs: config.clientHeadersTimeoutMs,
    requestTimeoutMs: config.clientRequestTimeoutMs,
  })

  let stopping = false
  async function shutdown (reason: string): Promise<void> {
    if (stopping) return
    stopping = true
    logger.info({ reason }, 'worker draining')
    // listening turns false at once; 'close' comes when the last connection has ended
    const closed = once(server, 'close')
    server.close()
    // keep-alive sockets go idle as their last response ends; close each as soon as it does
    const sweep = setInterval(() => server.closeIdleConnections(), 50)
    sweep.unref()
    server.closeIdleConnections()
    const force = setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs)
    force.unref()
    await closed
    await pools.close()
    // every event of the drained requests reaches the database, or stays in the audit log for the next start
    await audit?.close()
    await store.close()
    await admission.close()
    await payments.close()
    await tokens.close()
    logger.flush()
    process.exit(0)
  }

  // messages may have been lost (the Redis relay reconnected): a deletion among them would
  // leave its partner's breakers, budget and gate (and metric series) until a restart
  const forgetDeletedPartners = async (): Promise<void> => {
    for (const id of reliability.partnerIds()) {
      try {
        if (await store.getPartnerById(id) === null) reliability.forgetPartner(id)
      } catch (err) {
        logger.warn({ partner_id: id, err: errorSummary(err) }, 'could not tell whether a partner still exists; its reliability state stays')
      }
    }
  }
  process.on('message', (message: unknown) => {
    if (!isPrimaryToWorker(message)) return
    const invalidation = message.invalidation
    keys.invalidate(invalidation)
    admission.invalidate(invalidation)
    if (invalidation.kind === 'partner' || invalidation.kind === 'all') partners.clear()
    if (invalidation.kind === 'partner' && invalidation.deleted === true) reliability.forgetPartner(invalidation.id)
    if (invalidation.kind === 'all') void forgetDeletedPartners()
  })
  stop = (reason) => void shutdown(reason)
  if (stopAsked !== null) return stop(stopAsked)

  server.listen(config.port, config.host)
  await once(server, 'listening')
  logger.debug({ port: config.port }, 'worker listening')
}
