// A worker's audit pipeline: its own writer (hash chain), its mode's sink, spill files under
// RELAYKEY_DATA_DIR/audit-spill, and a replay of whatever an earlier process left there.
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
  /** flushes every event (to the database, or a spill file) and closes the sink */
  close (): Promise<void>
}

export async function startAuditPipeline (config: Config, logger: Logger): Promise<WorkerAudit> {
  const sink = config.databaseUrl !== null
    ? openPostgresAuditSink(config.databaseUrl)
    : await openThreadedSqliteAuditSink(join(config.dataDir, EMBEDDED_DB_FILE))
  const pipeline = new AuditPipeline({ sink, spillDir: join(config.dataDir, 'audit-spill'), logger })
  await pipeline.start()
  return {
    record: (event) => pipeline.record(event),
    stats: () => pipeline.stats(),
    async close () {
      await pipeline.close()
      await sink.close()
    },
  }
}
