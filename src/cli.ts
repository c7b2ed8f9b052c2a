// `relaykey serve` (what `npm start` runs), `relaykey migrate` and `relaykey audit verify`.
import cluster from 'node:cluster'
import { loadDotEnv } from './config/dotenv.js'
import { loadConfig, type Config } from './config/config.js'
import { ensureEmbeddedSecrets } from './config/embedded-secrets.js'
import { ConfigError } from './errors.js'
import { createLogger } from './telemetry/logger.js'
import { runMigrations } from './store/postgres/migrate.js'

const USAGE = `usage: relaykey <command>
  serve          run the proxy and the admin API (same as npm start)
  migrate        apply migrations/ to DATABASE_URL
  audit verify   check the audit trail's hash chains (DATABASE_URL, else RELAYKEY_DATA_DIR)`

async function main (argv: string[]): Promise<number> {
  const command = argv[0] ?? 'serve'
  loadDotEnv()
  if (command === 'migrate') return await migrate()
  if (command === 'audit') {
    // loaded on demand: serve never needs it
    const { runAuditCommand } = await import('./audit/audit-verify-command.js')
    return await runAuditCommand(argv.slice(1))
  }
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`relaykey: ${err.message}`)
      return 2
    }
    throw err
  }
  switch (command) {
    case 'serve':
      await serve(config)
      return -1
    case 'help':
    case '--help':
      console.log(USAGE)
      return 0
    default:
      console.error(USAGE)
      return 2
  }
}

/** needs nothing but DATABASE_URL: migrations run before the rest of a deployment exists */
async function migrate (): Promise<number> {
  const url = process.env.DATABASE_URL?.trim()
  if (url === undefined || url === '') {
    console.error('relaykey: DATABASE_URL: required to migrate')
    return 2
  }
  const applied = await runMigrations(url)
  console.log(applied.length === 0 ? 'migrations: up to date' : `migrations applied: ${applied.join(', ')}`)
  return 0
}

async function serve (config: Config): Promise<void> {
  const logger = createLogger(config.logLevel)
  if (cluster.isPrimary) {
    if (config.mode === 'embedded') {
      const files = ensureEmbeddedSecrets(config)
      logger.info({ admin_token_file: files.adminTokenFile, data_dir: config.dataDir }, 'embedded mode: admin token is in admin_token_file')
    }
    const { runPrimary } = await import('./process/primary.js')
    await runPrimary(config, logger)
  } else {
    const { runWorker } = await import('./process/worker.js')
    await runWorker(config, logger)
  }
}

main(process.argv.slice(2)).then((code) => {
  if (code >= 0) process.exit(code)
}, (err: unknown) => {
  console.error(`relaykey: ${err instanceof Error ? err.message : String(err)}`)
  process.exit(1)
})
