// Embedded mode started with RELAYKEY_CONFIG: the file is the source of truth for partners,
// credentials, policies and bindings. Applied at start (a bad file stops the start) and on
// SIGHUP (a bad file is refused and the configuration in force keeps serving), through the
// node's own admin API, so a change reaches the workers exactly as an admin's would, without a
// request dropped. Keys in the file are left to `relaykey config apply`, which prints each new
// key once: a node never writes a raw key to its log.
import type { Logger } from 'pino'
import { AdminClient } from '../cli/admin-client.js'
import { CliError } from '../cli/cli-error.js'
import { ConfigFile, ConfigFileError } from './config-file.js'
import { desiredState } from './desired-state.js'
import { readCurrentState } from './current-state.js'
import { applyPlan, planChanges } from './config-plan.js'

/** true: the file is in force; false: it was refused (logged with file, line and field) */
export async function loadConfigFile (path: string, client: AdminClient, logger: Logger): Promise<boolean> {
  let desired
  try {
    desired = desiredState(ConfigFile.read(path))
  } catch (err) {
    if (!(err instanceof ConfigFileError)) throw err
    logger.error({ file: err.file, line: err.line, field: err.field }, `config file refused; the configuration in force stays: ${err.message}`)
    return false
  }
  if (desired.keys.length > 0) {
    logger.info({ file: path, keys: desired.keys.length }, 'keys in the config file are issued by `relaykey config apply`, which prints each once; the node does not issue them')
    desired = { ...desired, keys: [] }
  }
  try {
    const plan = planChanges(desired, await readCurrentState(client), true)
    await applyPlan(plan, client, (line) => logger.info({ change: line.split('\n')[0] }, 'config file change'))
    logger.info({ file: path, changes: plan.changes.length }, 'config file in force')
    return true
  } catch (err) {
    if (!(err instanceof CliError)) throw err
    logger.error({ file: path }, `config file not (wholly) applied: ${err.message}`)
    return false
  }
}

export function selfAdminClient (host: string, port: number, token: string): AdminClient {
  const reachable = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host
  return new AdminClient(`http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`, token)
}
