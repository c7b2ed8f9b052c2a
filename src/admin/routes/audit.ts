// GET /admin/audit: the audit trail itself, newest events first, a page at a time, narrowed by
// key, customer, partner, outcome and a time range.
import type { Router } from '../../http/router.js'
import { ValidationError } from '../../errors.js'
import type { AuditCursor, AuditFilter, AuditQuery } from '../../audit/audit-query.js'
import type { ChainedAuditEvent } from '../../audit/audit-event.js'
import { ok, type AdminHandler } from '../reply.js'
import { checkQuery, queryValue, queryWholeNumber, timestamp } from '../validate.js'

const AUDIT_QUERY = new Set(['key_id', 'customer', 'partner', 'outcome', 'code', 'from', 'to', 'limit', 'before'])
const MAX_PAGE = 1000
/** audit event ids are UUIDs (randomUUID), lowercase */
const EVENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export function registerAuditRoutes (router: Router<AdminHandler>, audit: AuditQuery): void {
  router.on('GET', '/admin/audit', async ({ query }) => {
    checkQuery(query, AUDIT_QUERY)
    const filter = auditFilter(query)
    const limit = queryWholeNumber(query, 'limit', 1, MAX_PAGE) ?? 100
    const before = auditCursor(queryValue(query, 'before'))
    // one more than asked for tells whether a next page exists: a last page that happens to be
    // full gets null, not a cursor to an empty page
    const found = await audit.list(filter, limit + 1, before)
    const events = found.length > limit ? found.slice(0, limit) : found
    const last = events.at(-1)
    return ok({
      events: events.map(eventView),
      // the next page's `before`: the last event's time and id, so events sharing a millisecond
      // across a page boundary are neither skipped nor repeated
      next_before: found.length > limit && last !== undefined ? `${new Date(last.ts).toISOString()}~${last.id}` : null,
    })
  })
}

/** every filter the query names; `code` is another name for `outcome` (the refusals' error code) */
function auditFilter (query: URLSearchParams): AuditFilter {
  const outcome = queryValue(query, 'outcome')
  const code = queryValue(query, 'code')
  if (outcome !== null && code !== null && outcome !== code) {
    throw new ValidationError('code', 'is another name for outcome; give one of them, or both with the same value')
  }
  const from = optionalTimestamp(query, 'from')
  const to = optionalTimestamp(query, 'to')
  if (from !== null && to !== null && from > to) throw new ValidationError('from', 'must not be after to')
  return {
    key_id: queryValue(query, 'key_id'),
    customer: queryValue(query, 'customer'),
    partner: queryValue(query, 'partner'),
    outcome: outcome ?? code,
    from,
    to,
  }
}

function optionalTimestamp (query: URLSearchParams, name: string): Date | null {
  const raw = queryValue(query, name)
  return raw === null ? null : timestamp(raw, name)
}

/** `before`: an RFC 3339 time, or a `next_before` cursor (`<time>~<event id>`) from the previous page */
function auditCursor (raw: string | null): AuditCursor | null {
  if (raw === null) return null
  const [time, id, extra] = raw.split('~')
  if (extra !== undefined || (id !== undefined && !EVENT_ID.test(id))) {
    throw new ValidationError('before', 'must be an RFC 3339 time or a next_before value')
  }
  return { ts: timestamp(time, 'before'), id: id ?? null }
}

function eventView (event: ChainedAuditEvent): Record<string, unknown> {
  return { ...event, ts: new Date(event.ts).toISOString() }
}
