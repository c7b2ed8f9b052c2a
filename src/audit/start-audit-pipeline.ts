// A worker's audit pipeline: its own writer (hash chain), its mode's sink, its log under
// RELAYKEY_DATA_DIR/audit-log, and shipping whatever an earlier process left there (or, from
// older releases, in RELAYKEY_DATA_DIR/audit-spill).
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import { EMBEDDED_DB_FILE } from '../store/open-control-store.js'
import { AuditPipeline, type AuditPipelineStats } from './audit-pipeline.js'
import type { AuditRecorder } from './audit-event.js'
import { openPostgresAuditSink } from './postgres-audit-sink.js'
import { openThreadedSqliteAuditSink } from './threaded-sqlite-audit-sink.js'

export interface WorkerAudit extends AuditRecorder {
  stats (): AuditPipelineStats
  /** ships what it can, leaves the rest in the log for the next start, and closes the sink */
  close (): Promise<void>
}

export async function startAuditPipeline (config: Config, logger: Logger): Promise<WorkerAudit> {
  const sink = config.databaseUrl !== null
    ? openPostgresAuditSink(config.databaseUrl)
    : await openThreadedSqliteAuditSink(join(config.dataDir, EMBEDDED_DB_FILE))
  const pipeline = new AuditPipeline({
    sink,
    logDir: join(config.dataDir, 'audit-log'),
    legacyDirs: [join(config.dataDir, 'audit-spill')],
    quarantineDir: join(config.dataDir, 'audit-quarantine'),
    fsync: config.auditFsync,
    logger,
  })
  await pipeline.start()
  return {
    record: (event, waiter) => pipeline.record(event, waiter),
    stats: () => pipeline.stats(),
    async close () {
      await pipeline.close()
      await sink.close()
    },
  }
}
