// `relaykey keys create|list|show|revoke|rotate`: virtual keys through the admin API
// (/admin/keys). The raw key exists only in the answers to create and rotate: it is printed
// once and never again.
import type { AdminClient } from './admin-client.js'
import { CliError, EXIT } from './cli-error.js'
import { printJson, printTable } from './output.js'
import { parseCommandArgs } from './parse-args.js'
import type { VirtualKey } from '../store/model.js'
import { JSON_OPTION, admin, connect, integerOption, onePositional, printFields, queryString, requiredOption, safeText, stringOption } from './admin-command-kit.js'

/** a key as the admin API shows it (the raw key only in the answers to create and rotate) */
type KeyView = VirtualKey & { status: string; key?: string }

const MAX_GRACE_SECONDS = 2_592_000

export async function runCreate (args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, {
    ...JSON_OPTION,
    name: { type: 'string' },
    policy: { type: 'string' },
    environment: { type: 'string' },
    customer: { type: 'string' },
    team: { type: 'string' },
    service: { type: 'string' },
    'expires-at': { type: 'string' },
  })
  const body: Record<string, string> = {
    name: requiredOption(values, 'name'),
    policy: requiredOption(values, 'policy'),
    environment: requiredOption(values, 'environment'),
  }
  for (const [option, field] of [['customer', 'customer'], ['team', 'team'], ['service', 'service'], ['expires-at', 'expires_at']] as const) {
    const value = stringOption(values, option)
    if (value !== undefined) body[field] = value
  }
  const client = await connect()
  const key = await admin<KeyView>(client, 'POST', '/admin/keys', 201, body)
  if (values.json === true) {
    printJson(key)
    return EXIT.ok
  }
  printTable([key], [['id', (k) => k.id], ['name', (k) => safeText(k.name)], ['key', (k) => k.key]])
  process.stdout.write('\nThe key is shown only once: store it now. RelayKey keeps only its digest.\n')
  return EXIT.ok
}

export async function runList (args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, { ...JSON_OPTION, policy: { type: 'string' }, customer: { type: 'string' } })
  const client = await connect()
  const path = '/admin/keys' + queryString({ policy: stringOption(values, 'policy'), customer: stringOption(values, 'customer') })
  const keys = await admin<KeyView[]>(client, 'GET', path)
  if (values.json === true) {
    printJson(keys)
    return EXIT.ok
  }
  const policies = await policyNames(client)
  printTable(keys, [
    ['id', (k) => k.id],
    ['name', (k) => safeText(k.name)],
    ['status', (k) => k.status],
    ['policy', (k) => safeText(policies.get(k.policy_id) ?? k.policy_id)],
    ['environment', (k) => k.environment],
    ['customer', (k) => (k.customer === null ? null : safeText(k.customer))],
    ['prefix', (k) => k.prefix],
    ['expires', (k) => k.expires_at],
  ])
  return EXIT.ok
}

export async function runShow (args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, JSON_OPTION, 1)
  const id = onePositional(positionals, 'key id')
  const client = await connect()
  const key = await admin<KeyView>(client, 'GET', `/admin/keys/${encodeURIComponent(id)}`)
  if (values.json === true) {
    printJson(key)
    return EXIT.ok
  }
  await printKey(client, key)
  return EXIT.ok
}

export async function runRevoke (args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, JSON_OPTION, 1)
  const id = onePositional(positionals, 'key id')
  const client = await connect()
  const key = await admin<KeyView>(client, 'POST', `/admin/keys/${encodeURIComponent(id)}/revoke`)
  if (values.json === true) {
    printJson(key)
    return EXIT.ok
  }
  await printKey(client, key)
  return EXIT.ok
}

export async function runRotate (args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { ...JSON_OPTION, 'grace-seconds': { type: 'string' } }, 1)
  const id = onePositional(positionals, 'key id')
  const grace = integerOption(values, 'grace-seconds', 0, MAX_GRACE_SECONDS)
  const client = await connect()
  const key = await admin<KeyView>(client, 'POST', `/admin/keys/${encodeURIComponent(id)}/rotate`, 200, grace === undefined ? undefined : { grace_seconds: grace })
  if (values.json === true) {
    printJson(key)
    return EXIT.ok
  }
  printTable([key], [['id', (k) => k.id], ['name', (k) => safeText(k.name)], ['key', (k) => k.key]])
  process.stdout.write('\nThe new key is shown only once: store it now. ' + (grace === undefined || grace === 0
    ? 'The previous key has stopped working.\n'
    : `The previous key keeps working for ${grace} s.\n`))
  return EXIT.ok
}

/** every field of one key, its policy by name */
async function printKey (client: AdminClient, key: KeyView): Promise<void> {
  const policies = await policyNames(client)
  const policy = policies.get(key.policy_id)
  printFields([
    ['id', key.id],
    ['name', key.name],
    ['status', key.status],
    ['policy', policy === undefined ? key.policy_id : `${policy} (${key.policy_id})`],
    ['environment', key.environment],
    ['customer', key.customer],
    ['team', key.team],
    ['service', key.service],
    ['prefix', key.prefix],
    ['expires', key.expires_at],
    ['revoked', key.revoked_at],
    ['created', key.created_at],
    ['updated', key.updated_at],
  ])
}

/** policy id → name, for readable tables; empty when the list cannot be read (the id is shown) */
async function policyNames (client: AdminClient): Promise<Map<string, string>> {
  try {
    const policies = await admin<Array<{ id: string; name: string }>>(client, 'GET', '/admin/policies')
    return new Map(policies.map((p) => [p.id, p.name]))
  } catch (err) {
    if (err instanceof CliError) return new Map()
    throw err
  }
}
