// `relaykey serve`: the primary (cluster manager, admin API) or, in a forked process, a worker.
import cluster from 'node:cluster'
import { loadConfig } from '../config/config.js'
import { ensureEmbeddedSecrets } from '../config/embedded-secrets.js'
import { ConfigError } from '../errors.js'
import { createLogger } from '../telemetry/logger.js'
import { CliError, EXIT } from './cli-error.js'
import { parseCommandArgs } from './parse-args.js'
import { DataDirLockedError, lockDataDir } from '../config/data-dir-lock.js'

/** never resolves with a code while serving: -1 tells cli.ts not to exit */
export async function run (args: string[]): Promise<number> {
  parseCommandArgs(args, {})
  let config
  try {
    config = loadConfig(process.env, { readAdminTokens: cluster.isPrimary })
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, EXIT.usage)
    throw err
  }
  const logger = createLogger(config.logLevel)
  if (cluster.isPrimary) {
    if (config.mode === 'embedded') {
      const files = ensureEmbeddedSecrets(config)
      let release: () => void
      try {
        release = lockDataDir(config.dataDir)
      } catch (err) {
        if (err instanceof DataDirLockedError) throw new CliError(err.message, EXIT.failed)
        throw err
      }
      process.on('exit', release)
      logger.info({ admin_token_file: files.adminTokenFile, data_dir: config.dataDir }, 'embedded mode: admin token is in admin_token_file')
    }
    const { runPrimary } = await import('../process/primary.js')
    await runPrimary(config, logger)
  } else {
    const { runWorker } = await import('../process/worker.js')
    await runWorker(config, logger)
  }
  return -1
}
