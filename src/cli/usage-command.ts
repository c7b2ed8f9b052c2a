// `relaykey usage`: one month of requests, outcomes, cost, bytes and x402 payments for a key, a
// customer, a partner (the filters combine) or everything, from GET /admin/usage.
import type { UsageCounts } from '../audit/audit-query.js'
import { CliError, EXIT } from './cli-error.js'
import { printJson, printTable } from './output.js'
import { parseCommandArgs } from './parse-args.js'
import { JSON_OPTION, admin, connect, printFields, queryString, safeText, stringOption } from './admin-command-kit.js'

/** GET /admin/usage's answer: the counts, and what they are of */
interface Usage extends UsageCounts {
  month: string
  key_id: string | null
  customer: string | null
  partner: string | null
  budget?: { limit: number; used: number; remaining: number }
}

export async function run (args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, {
    ...JSON_OPTION,
    key: { type: 'string' },
    customer: { type: 'string' },
    partner: { type: 'string' },
    month: { type: 'string' },
  })
  const month = stringOption(values, 'month')
  if (month !== undefined && !/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) throw new CliError('--month: must be YYYY-MM, e.g. 2026-11', EXIT.usage)
  const client = await connect()
  const usage = await admin<Usage>(client, 'GET', '/admin/usage' + queryString({
    key_id: stringOption(values, 'key'),
    customer: stringOption(values, 'customer'),
    partner: stringOption(values, 'partner'),
    month,
  }))
  if (values.json === true) {
    printJson(usage)
    return EXIT.ok
  }

  const scope = [
    usage.key_id === null ? null : `key ${usage.key_id}`,
    usage.customer === null ? null : `customer ${safeText(usage.customer)}`,
    usage.partner === null ? null : `partner ${safeText(usage.partner)}`,
  ].filter((s) => s !== null)
  process.stdout.write(`Usage in ${usage.month} (UTC) of ${scope.length === 0 ? 'every key' : scope.join(', ')}\n\n`)

  // requests by outcome: forwarded, each refusal RelayKey made, and the rest (502/504 answers,
  // clients that left first), which the API counts in requests only
  const outcomes: Array<[string, number]> = [['forwarded', usage.forwarded]]
  for (const [code, n] of Object.entries(usage.blocked).sort(([a], [b]) => a.localeCompare(b))) outcomes.push([code, n])
  const rest = usage.requests - usage.forwarded - Object.values(usage.blocked).reduce((a, b) => a + b, 0)
  if (rest > 0) outcomes.push(['upstream error, timeout or client closed', rest])
  outcomes.push(['total', usage.requests])
  printTable(outcomes, [['outcome', (o) => safeText(o[0])], ['requests', (o) => o[1]]])
  process.stdout.write('\n')

  printFields([
    ['cost', `${usage.cost} units`],
    ['retried', `${usage.retried} attempts`],
    ['upstream errors', usage.upstream_errors],
    ['bytes in', usage.bytes_in],
    ['bytes out', usage.bytes_out],
    ['paid', `${usage.paid.requests} requests, ${usage.paid.amount} (smallest units)`],
    ...(usage.budget === undefined
      ? []
      : [['budget', `${usage.budget.used} of ${usage.budget.limit} used, ${usage.budget.remaining} remaining`] as const]),
  ])
  return EXIT.ok
}
