// `relaykey changes list`: the admin change log (GET /admin/changes), newest first: who changed
// what and when, one line a change with the fields that changed, or (--json) the API's pages.
import { EXIT } from './cli-error.js'
import { printJson, printTable } from './output.js'
import { parseCommandArgs } from './parse-args.js'
import { JSON_OPTION, admin, connect, integerOption, queryString, safeText, stringOption } from './admin-command-kit.js'

interface ChangeView {
  seq: number
  ts: string
  token_name: string
  action: string
  resource_type: string
  resource_id: string
  request_id: string
  changes: Record<string, unknown>
}

interface ChangePage {
  changes: ChangeView[]
  next_before: number | null
}

const OPTIONS = {
  ...JSON_OPTION,
  'resource-type': { type: 'string' },
  'resource-id': { type: 'string' },
  token: { type: 'string' },
  action: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  limit: { type: 'string' },
} as const

export async function run (args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, OPTIONS)
  const limit = integerOption(values, 'limit', 1, 1000) ?? 50
  const page = await admin<ChangePage>(await connect(), 'GET', '/admin/changes' + queryString({
    resource_type: stringOption(values, 'resource-type'),
    resource_id: stringOption(values, 'resource-id'),
    token: stringOption(values, 'token'),
    action: stringOption(values, 'action'),
    from: stringOption(values, 'from'),
    to: stringOption(values, 'to'),
    limit,
  }))
  if (values.json === true) {
    printJson(page)
    return EXIT.ok
  }
  printTable(page.changes, [
    ['seq', (c) => c.seq],
    ['time', (c) => c.ts],
    ['token', (c) => safeText(c.token_name)],
    ['action', (c) => c.action],
    ['resource', (c) => `${c.resource_type} ${safeText(c.resource_id)}`],
    ['fields', (c) => safeText(Object.keys(c.changes).join(' '))],
  ])
  if (page.next_before !== null) console.log(`(more: --limit, or GET /admin/changes?before=${page.next_before})`)
  return EXIT.ok
}
