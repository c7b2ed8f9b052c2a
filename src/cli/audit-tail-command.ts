// `relaykey audit tail [--follow]`: the latest audit events, oldest first, from GET /admin/audit;
// --follow then polls every second for new ones until SIGINT or SIGTERM (exit 0). --json prints
// one event per line (NDJSON), so the output can be piped.
import { setTimeout as sleep } from 'node:timers/promises'
import type { AdminClient } from './admin-client.js'
import { CliError, EXIT } from './cli-error.js'
import { parseCommandArgs } from './parse-args.js'
import { JSON_OPTION, admin, connect, integerOption, queryString, safeText, stringOption } from './admin-command-kit.js'

interface AuditEvent {
  ts: string
  id: string
  request_id: string
  key_id: string | null
  partner: string
  method: string
  path: string
  status: number
  outcome: string
  cost: number
  latency_ms: number
  [field: string]: unknown
}

interface AuditPage {
  events: AuditEvent[]
  next_before: string | null
}

type Filters = Record<'key_id' | 'customer' | 'partner' | 'outcome', string | undefined>

const DEFAULT_LIMIT = 20
const MAX_PAGE = 1000
const POLL_MS = 1000
/**
 * An event's `ts` is when its request arrived, and it reaches the audit trail only once the
 * request is answered and its writer has flushed: a slow request's event can appear after
 * later, faster ones were printed. Each poll therefore looks this far back before the newest
 * event seen (deduplicating by id), rather than starting exactly at it.
 */
const LOOKBACK_MS = 5000

export async function run (args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, {
    ...JSON_OPTION,
    key: { type: 'string' },
    customer: { type: 'string' },
    partner: { type: 'string' },
    outcome: { type: 'string' },
    limit: { type: 'string' },
    follow: { type: 'boolean', short: 'f' },
  })
  const filters: Filters = {
    key_id: stringOption(values, 'key'),
    customer: stringOption(values, 'customer'),
    partner: stringOption(values, 'partner'),
    outcome: stringOption(values, 'outcome'),
  }
  const limit = integerOption(values, 'limit', 1, MAX_PAGE) ?? DEFAULT_LIMIT
  const follow = values.follow === true
  const out: EventPrinter = values.json === true ? new NdjsonPrinter() : new TablePrinter(follow)
  const client = await connect()

  // a reader that went away (`| head`) ends the tail quietly
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok)
    throw err
  })
  let stop: () => void = () => {}
  const stopped = new Promise<number>((resolve) => { stop = () => resolve(EXIT.ok) })
  if (follow) {
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  }

  const tail = async (): Promise<number> => {
    const first = await admin<AuditPage>(client, 'GET', '/admin/audit' + queryString({ ...filters, limit }))
    const initial = first.events.slice().reverse()
    out.print(initial)
    if (!follow) return EXIT.ok
    return await followOn(client, filters, initial, first.next_before !== null, out)
  }
  // a signal ends a follow at once, even while a request is waiting for its answer
  return await Promise.race([stopped, tail()])
}

/** polls every second until the process is stopped; never resolves on its own */
async function followOn (client: AdminClient, filters: Filters, printed: AuditEvent[], truncated: boolean, out: EventPrinter): Promise<number> {
  /** id → time of the events already printed (or passed over) within the look-back window */
  const seen = new Map<string, number>()
  let newest: number | null = null
  for (const event of printed) {
    const ts = Date.parse(event.ts)
    seen.set(event.id, ts)
    newest = newest === null ? ts : Math.max(newest, ts)
  }
  // on the first poll, unseen events older than the newest printed were left out by --limit
  // (when there were more than it), not new
  let floor = truncated ? newest : null
  let failing = false
  for (;;) {
    await sleep(POLL_MS)
    let events: AuditEvent[]
    try {
      events = await eventsSince(client, filters, newest === null ? null : newest - LOOKBACK_MS)
    } catch (err) {
      // a node restarting or a store that is slow for a moment: say so once, keep polling
      if (!(err instanceof CliError) || err.exitCode !== EXIT.failed) throw err
      if (!failing) process.stderr.write(`relaykey: ${err.message} (still trying)\n`)
      failing = true
      continue
    }
    if (failing) process.stderr.write('relaykey: the admin API answers again\n')
    failing = false
    events.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const fresh: AuditEvent[] = []
    for (const event of events) {
      if (seen.has(event.id)) continue
      const ts = Date.parse(event.ts)
      seen.set(event.id, ts)
      newest = newest === null ? ts : Math.max(newest, ts)
      if (floor !== null && ts < floor) continue
      fresh.push(event)
    }
    floor = null
    out.print(fresh)
    if (newest !== null) {
      const horizon = newest - LOOKBACK_MS
      for (const [id, ts] of seen) if (ts < horizon) seen.delete(id)
    }
  }
}

/** every matching event at or after `from` (all of them when null), newest first, page by page */
async function eventsSince (client: AdminClient, filters: Filters, from: number | null): Promise<AuditEvent[]> {
  const events: AuditEvent[] = []
  let before: string | null = null
  for (;;) {
    const page: AuditPage = await admin<AuditPage>(client, 'GET', '/admin/audit' + queryString({
      ...filters,
      from: from === null ? undefined : new Date(from).toISOString(),
      limit: MAX_PAGE,
      before,
    }))
    events.push(...page.events)
    if (page.next_before === null) return events
    before = page.next_before
  }
}

interface EventPrinter {
  print (events: readonly AuditEvent[]): void
}

/** one JSON document per line, the API's event as it is */
class NdjsonPrinter implements EventPrinter {
  print (events: readonly AuditEvent[]): void {
    for (const event of events) process.stdout.write(JSON.stringify(event) + '\n')
  }
}

const COLUMNS: ReadonlyArray<[string, (e: AuditEvent) => unknown]> = [
  ['time', (e) => e.ts],
  ['request id', (e) => e.request_id],
  ['key', (e) => e.key_id],
  ['partner', (e) => e.partner],
  ['method', (e) => e.method],
  ['path', (e) => e.path],
  ['status', (e) => e.status],
  ['outcome', (e) => e.outcome],
  ['cost', (e) => e.cost],
  ['latency', (e) => (typeof e.latency_ms === 'number' ? `${e.latency_ms}ms` : null)],
]

/** when following, room for typical partner slugs, paths and outcomes, so later rows line up */
const FOLLOW_MIN_WIDTHS: Record<string, number> = { partner: 12, path: 24, outcome: 20 }

/**
 * An aligned table printed a batch at a time: the headings once, columns as wide as the
 * widest cell so far (a later, wider cell widens its column from then on).
 */
class TablePrinter implements EventPrinter {
  readonly #widths: number[]
  #headed = false

  constructor (follow: boolean) {
    this.#widths = COLUMNS.map(([heading]) => Math.max(heading.length, follow ? FOLLOW_MIN_WIDTHS[heading] ?? 0 : 0))
  }

  print (events: readonly AuditEvent[]): void {
    const rows = events.map((e) => COLUMNS.map(([, pick]) => safeText(pick(e))))
    for (const row of rows) row.forEach((cell, i) => { this.#widths[i] = Math.max(this.#widths[i]!, cell.length) })
    if (!this.#headed) {
      this.#line(COLUMNS.map(([heading]) => heading.toUpperCase()))
      this.#headed = true
    }
    for (const row of rows) this.#line(row)
  }

  #line (cells: string[]): void {
    process.stdout.write(cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(this.#widths[i]!))).join('  ').trimEnd() + '\n')
  }
}
