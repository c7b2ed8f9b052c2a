// `relaykey <command>`: serve (what `npm start` runs), migrate, audit, config and the admin
// commands (src/cli/commands.ts). An unknown command or flag is an error (exit 2), never a
// server start; every command answers --help.
import { readFileSync } from 'node:fs'
import { loadDotEnv } from './config/dotenv.js'
import { COMMANDS } from './cli/commands.js'
import type { Command } from './cli/command.js'
import { CliError, EXIT } from './cli/cli-error.js'

function overview (): string {
  const width = Math.max(...COMMANDS.map((c) => c.words.join(' ').length))
  return [
    'usage: relaykey <command> [options]      (relaykey <command> --help for one command)',
    '',
    ...COMMANDS.map((c) => `  ${c.words.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    'The admin commands talk to a running node: RELAYKEY_ADMIN_URL (default',
    'http://127.0.0.1:8081) with RELAYKEY_ADMIN_TOKEN, or the admin-token file in',
    'RELAYKEY_DATA_DIR. --json prints JSON for scripts. Exit codes: 0 ok, 1 failed,',
    '2 usage, 3 config diff found changes, 4 not found.',
  ].join('\n')
}

function version (): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** the command whose words start argv, the longest such */
function findCommand (argv: string[]): Command | undefined {
  let found: Command | undefined
  for (const command of COMMANDS) {
    if (command.words.every((w, i) => argv[i] === w) && (found === undefined || command.words.length > found.words.length)) found = command
  }
  return found
}

async function main (argv: string[]): Promise<number> {
  // no command: serve, as the package's start script and earlier releases did
  if (argv.length === 0) argv = ['serve']
  const first = argv[0]!
  if (first === '-h' || first === '--help' || first === 'help') {
    console.log(overview())
    return EXIT.ok
  }
  if (first === '-v' || first === '--version') {
    console.log(version())
    return EXIT.ok
  }
  const command = findCommand(argv)
  if (command === undefined) {
    const known = COMMANDS.filter((c) => c.words[0] === first)
    const what = known.length > 0 ? `'${argv.slice(0, 2).join(' ')}' is not a command; ${first} has: ${known.map((c) => c.words.slice(1).join(' ')).join(', ')}` : `unknown command '${first}'`
    console.error(`relaykey: ${what}\n\n${overview()}`)
    return EXIT.usage
  }
  const args = argv.slice(command.words.length)
  if (args.includes('-h') || args.includes('--help')) {
    console.log(command.help)
    return EXIT.ok
  }
  loadDotEnv()
  return await command.run(args)
}

main(process.argv.slice(2)).then((code) => {
  if (code >= 0) process.exit(code)
}, (err: unknown) => {
  if (err instanceof CliError) {
    console.error(`relaykey: ${err.message}`)
    process.exit(err.exitCode)
  }
  console.error(`relaykey: ${err instanceof Error ? err.message : String(err)}`)
  process.exit(EXIT.failed)
})
