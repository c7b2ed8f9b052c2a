// `relaykey config diff|apply|export|seal` (docs/gitops.md): a config file against a running
// node's admin API.
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { AdminClient } from './admin-client.js'
import { CliError, EXIT } from './cli-error.js'
import { printJson } from './output.js'
import { parseCommandArgs } from './parse-args.js'
import { ConfigFile, ConfigFileError } from '../config-file/config-file.js'
import { desiredState } from '../config-file/desired-state.js'
import { readCurrentState } from '../config-file/current-state.js'
import { applyPlan, describe, planChanges, type Plan } from '../config-file/config-plan.js'
import { exportDocument, exportYaml } from '../config-file/config-export.js'
import { InlineSecretCipher } from '../secrets/inline-cipher.js'
import { parseMasterKey } from '../config/config.js'

const FILE_OPTIONS = { file: { type: 'string', short: 'f' }, prune: { type: 'boolean' }, json: { type: 'boolean' } } as const
const APPLY_OPTIONS = { file: { type: 'string', short: 'f' }, prune: { type: 'boolean' } } as const

async function plan (args: string[], options: typeof FILE_OPTIONS | typeof APPLY_OPTIONS = FILE_OPTIONS): Promise<{ plan: Plan; json: boolean; prune: boolean }> {
  const { values } = parseCommandArgs(args, options)
  if (typeof values.file !== 'string') throw new CliError('-f <file> is required', EXIT.usage)
  const prune = values.prune === true
  let desired
  try {
    desired = desiredState(ConfigFile.read(values.file))
  } catch (err) {
    if (err instanceof ConfigFileError) throw new CliError(err.message, EXIT.failed)
    throw err
  }
  const client = AdminClient.fromEnv()
  return { plan: planChanges(desired, await readCurrentState(client), prune), json: values.json === true, prune }
}

export async function diff (args: string[]): Promise<number> {
  const { plan: p, json } = await plan(args)
  if (json) {
    printJson({ changes: p.changes.map(({ action, kind, name, fields }) => ({ action, kind, name, fields })), unmanaged: p.unmanaged })
  } else {
    for (const change of p.changes) console.log(describe(change))
    for (const { kind, name } of p.unmanaged) console.log(`= ${kind} ${name} (not in the file: kept; --prune deletes it)`)
    console.log(p.changes.length === 0 ? 'no changes' : `${p.changes.length} change${p.changes.length === 1 ? '' : 's'}`)
  }
  return p.changes.length === 0 ? EXIT.ok : EXIT.changes
}

export async function apply (args: string[]): Promise<number> {
  const { plan: p } = await plan(args, APPLY_OPTIONS)
  if (p.changes.length === 0) {
    console.log('no changes')
    return EXIT.ok
  }
  try {
    await applyPlan(p, AdminClient.fromEnv(), (line) => { console.log(line) })
  } catch (err) {
    if (!(err instanceof CliError)) throw err
    throw new CliError(`apply stopped at ${err.message}\n  the changes printed above were applied; run config diff to see what is left`, EXIT.failed)
  }
  console.log(`applied ${p.changes.length} change${p.changes.length === 1 ? '' : 's'}`)
  return EXIT.ok
}

export async function exportConfig (args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, { json: { type: 'boolean' } })
  const current = await readCurrentState(AdminClient.fromEnv())
  if (values.json === true) printJson(exportDocument(current))
  else process.stdout.write(exportYaml(current))
  return EXIT.ok
}

/** seals standard input under the node's master key, for an inline secret in a config file */
export async function seal (args: string[]): Promise<number> {
  parseCommandArgs(args, {})
  const key = masterKey()
  let value = readFileSync(0, 'utf8')
  if (value.endsWith('\n')) value = value.slice(0, value.endsWith('\r\n') ? -2 : -1)
  if (value === '') throw new CliError('nothing to seal: give the value on standard input', EXIT.usage)
  console.log(JSON.stringify({ provider: 'inline', ciphertext: new InlineSecretCipher(key).encrypt(value) }))
  return EXIT.ok
}

function masterKey (): Buffer {
  const given = process.env.RELAYKEY_MASTER_KEY?.trim()
  if (given !== undefined && given !== '') {
    try {
      return parseMasterKey(given)!
    } catch {
      throw new CliError('RELAYKEY_MASTER_KEY is not 32 bytes of hex or base64', EXIT.usage)
    }
  }
  const file = join(resolve(process.env.RELAYKEY_DATA_DIR ?? './data'), 'master-key')
  try {
    return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex')
  } catch {
    throw new CliError(`no master key: set RELAYKEY_MASTER_KEY (the node's), or run where RELAYKEY_DATA_DIR holds an embedded node's master-key file (${file})`, EXIT.usage)
  }
}
