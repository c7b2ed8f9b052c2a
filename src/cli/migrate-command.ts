// `relaykey migrate`: needs nothing but DATABASE_URL (migrations run before the rest of a
// deployment exists).
import { runMigrations } from '../store/postgres/migrate.js'
import { CliError, EXIT } from './cli-error.js'
import { parseCommandArgs } from './parse-args.js'

export async function run (args: string[]): Promise<number> {
  parseCommandArgs(args, {})
  const url = process.env.DATABASE_URL?.trim()
  if (url === undefined || url === '') throw new CliError('DATABASE_URL: required to migrate', EXIT.usage)
  const applied = await runMigrations(url)
  console.log(applied.length === 0 ? 'migrations: up to date' : `migrations applied: ${applied.join(', ')}`)
  return EXIT.ok
}
