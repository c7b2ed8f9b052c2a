// The cluster primary: owns the admin listener and the workers. It forks RELAYKEY_WORKERS
// workers, replaces any that die, relays control-plane changes to them, and on SIGTERM drains
// them and exits 0.
import cluster, { type Worker } from 'node:cluster'
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import { EgressPolicy } from '../http/egress-policy.js'
import { VirtualKeyCodec } from '../keys/virtual-key.js'
import { InlineSecretCipher } from '../secrets/inline-cipher.js'
import { openControlStore } from '../store/open-control-store.js'
import { migrateAtStart } from '../store/postgres/migrate.js'
import { createAdminServer } from '../admin/admin-server.js'
import { loadConfigFile, selfAdminClient } from '../config-file/config-file-loader.js'
import type { Invalidation, InvalidationPublisher } from '../store/invalidation.js'
import type { PrimaryToWorker } from './messages.js'
import { RedisInvalidationRelay } from './redis-invalidation-relay.js'
import { clusterMetricsReader, processMetrics, PRIMARY_PROCESS_PREFIX } from '../telemetry/cluster-metrics.js'
import { openAuditQuery } from '../audit/open-audit-query.js'
import { openAdmissionStore } from './open-admission-store.js'
import { workerExecArgv } from './worker-node-flags.js'
import { randomBytes } from 'node:crypto'
import { checkSecretFingerprints } from './secret-fingerprints.js'
import { MisconfigurationMonitor } from '../health/misconfiguration-monitor.js'
import { secretsOfConfig } from './secrets-of-config.js'
import { answerWithin } from '../store/answer-within.js'

/** a worker that dies within this long of starting counts towards crash-loop back-off */
const EARLY_EXIT_MS = 5_000

export async function runPrimary (config: Config, logger: Logger): Promise<void> {
  if (config.mode === 'distributed') {
    const applied = await migrateAtStart(config.databaseUrl!, config.autoMigrate)
    if (applied.length > 0) logger.info({ applied }, 'migrations applied')
  }
  const store = openControlStore(config, { connections: 8, logger })
  await store.ping()
  await checkSecretFingerprints(config, store)
  const configuration = new MisconfigurationMonitor(store, secretsOfConfig(config), logger)
  const audit = openAuditQuery(config, logger)
  const budgets = await openAdmissionStore(config, logger)

  const workers = new Set<Worker>()
  const broadcast = (message: PrimaryToWorker): void => {
    for (const worker of workers) if (worker.isConnected()) worker.send(message)
  }
  const relay = config.mode === 'distributed'
    ? new RedisInvalidationRelay(config.redisUrl!, config.redisPrefix, logger, (invalidation) => {
      broadcast({ type: 'invalidate', invalidation })
      configuration.changed()
    })
    : null
  await relay?.start()
  const invalidations: InvalidationPublisher = {
    publish (invalidation: Invalidation): void {
      broadcast({ type: 'invalidate', invalidation })
      relay?.publish(invalidation)
      configuration.changed()
    },
  }
  // RELAYKEY_CONFIG's changes go through this node's admin API under a token of their own
  const configFileToken = config.configFile === null ? null : randomBytes(32).toString('base64url')
  const primaryMetrics = processMetrics(PRIMARY_PROCESS_PREFIX)
  configuration.register(primaryMetrics)
  const probe = (ping: Promise<void>): Promise<string> => answerWithin(ping, config.keyLoadTimeoutMs, `no answer within ${config.keyLoadTimeoutMs} ms`)
    .then(() => 'ok', (err: unknown) => (err as Error).message)

  const admin: Server = createAdminServer({
    store,
    codec: new VirtualKeyCodec(config.hmacSecret!),
    cipher: config.masterKey === null ? null : new InlineSecretCipher(config.masterKey),
    secretFilesDir: config.secretFilesDir,
    egress: new EgressPolicy(config.egressAllow),
    invalidations,
    tokens: [
      ...config.adminTokens,
      ...(config.adminToken === null ? [] : [{ name: 'admin', token: config.adminToken, scope: 'write' as const }]),
      ...(configFileToken === null ? [] : [{ name: 'config-file', token: configFileToken, scope: 'write' as const }]),
    ],
    logger,
    // the workers' aggregate, then the primary's own metrics (process ones under relaykey_primary_)
    metrics: clusterMetricsReader(primaryMetrics),
    async readiness () {
      const [control, limits] = await Promise.all([probe(store.ping()), probe(budgets.ping())])
      const report = configuration.report()
      const status = control !== 'ok' || limits !== 'ok' ? 'unavailable' : report.misconfigurations.length > 0 ? 'degraded' : 'ready'
      return { status, stores: { control, limits }, ...report }
    },
    usage: { audit, budgets },
    timeoutMs: config.adminTimeoutMs,
  })
  admin.listen(config.adminPort, config.adminHost)
  await once(admin, 'listening')
  // RELAYKEY_CONFIG: the file's configuration is in force before a worker serves a request; a
  // SIGHUP meanwhile is kept for once the handler below is in place (its default would kill us)
  let hangupDuringStart = false
  if (config.configFile !== null) process.on('SIGHUP', () => { hangupDuringStart = true })
  const configClient = config.configFile === null ? null : selfAdminClient(config.adminHost, (admin.address() as { port: number }).port, configFileToken!)
  if (config.configFile !== null && !await loadConfigFile(config.configFile, configClient!, logger)) {
    logger.flush()
    process.exit(2)
  }

  // Workers get the resolved secrets (embedded mode may have generated them) through env.
  const workerEnv = {
    RELAYKEY_HMAC_SECRET: config.hmacSecret!.toString('utf8'),
    ...(config.masterKey === null ? {} : { RELAYKEY_MASTER_KEY: config.masterKey.toString('hex') }),
    ...(config.adminToken === null ? {} : { RELAYKEY_ADMIN_TOKEN: config.adminToken }),
  }
  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv) })
  let stopping = false
  let recentCrashes = 0
  const fork = (): void => {
    const worker = cluster.fork(workerEnv)
    const startedAt = Date.now()
    workers.add(worker)
    worker.on('exit', (code, signal) => {
      workers.delete(worker)
      if (stopping) return
      const early = Date.now() - startedAt < EARLY_EXIT_MS
      recentCrashes = early ? recentCrashes + 1 : 0
      const delay = Math.min(30_000, recentCrashes === 0 ? 0 : 250 * 2 ** Math.min(recentCrashes, 7))
      logger.error({ worker_pid: worker.process.pid, code, signal, restart_in_ms: delay }, 'worker exited; replacing it')
      setTimeout(() => { if (!stopping) fork() }, delay).unref()
    })
  }
  // installed before any worker starts, so a signal during start-up is honoured too
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down: draining workers')
    admin.close()
    admin.closeIdleConnections()
    const exits = [...workers].map((w) => once(w, 'exit'))
    // a signal, not a message: a worker still loading has no message listener yet, and one
    // that has not installed its handler yet has nothing to drain and simply ends
    for (const worker of workers) worker.process.kill('SIGTERM')
    const deadline = setTimeout(() => {
      for (const worker of workers) worker.process.kill('SIGKILL')
    }, config.shutdownGraceMs + 5_000)
    deadline.unref()
    await Promise.all(exits)
    configuration.close()
    await relay?.close()
    await audit.close()
    await budgets.close()
    await store.close()
    logger.info('stopped')
    logger.flush()
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
  // `npm start`: npm does not pass SIGTERM on to its script, so stopping npm by its pid left this
  // process serving, orphaned. Under npm, the parent's exit (this process re-parented) drains
  // like SIGTERM. Elsewhere a parent that exits is no reason to stop (nohup, setsid, a shell).
  if (process.env.npm_lifecycle_event !== undefined) {
    const parent = process.ppid
    setInterval(() => { if (process.ppid !== parent) void shutdown('parent process (npm) exited') }, 500).unref()
  }
  if (config.configFile !== null) {
    // SIGHUP: the file again; one reload at a time, a second signal during one runs it once more after
    let reloading: Promise<void> | null = null
    let again = false
    const reload = async (): Promise<void> => {
      do {
        again = false
        logger.info({ file: config.configFile }, 'SIGHUP: reloading the config file')
        await loadConfigFile(config.configFile!, configClient!, logger).catch((err: unknown) => {
          logger.error({ err: (err as Error).message }, 'config file reload failed; the configuration in force stays')
        })
      } while (again && !stopping)
      reloading = null
    }
    const onHangup = (): void => {
      if (stopping) return
      if (reloading !== null) again = true
      else reloading = reload()
    }
    process.removeAllListeners('SIGHUP')
    process.on('SIGHUP', onHangup)
    if (hangupDuringStart) onHangup()
  }

  // every configuration problem is logged (and on /ready) before the first request is served
  await configuration.start()
  for (let i = 0; i < config.workers; i++) fork()
  // a worker that dies before listening is replaced by fork(); its replacement is what we wait for
  await Promise.all([...workers].map((w) => Promise.race([once(w, 'listening'), once(w, 'exit')])))
  if (stopping) return
  logger.info({ mode: config.mode, port: config.port, admin_port: config.adminPort, workers: config.workers }, 'RelayKey ready')

}
