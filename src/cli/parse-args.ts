// node:util's parseArgs in strict mode: an unknown flag or a missing value is a usage error
// (exit 2) naming it, never ignored.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { CliError, EXIT } from './cli-error.js'

type Options = NonNullable<ParseArgsConfig['options']>

export function parseCommandArgs<O extends Options> (args: string[], options: O, positionals = 0): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  let parsed
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: positionals > 0 })
  } catch (err) {
    throw new CliError((err as Error).message.replace(/^TypeError \[\w+\]: /, ''), EXIT.usage)
  }
  if (parsed.positionals.length > positionals) throw new CliError(`unexpected argument '${parsed.positionals[positionals]}'`, EXIT.usage)
  return { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals }
}
