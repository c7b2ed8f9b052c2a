// GET /admin/audit: the audit trail itself, newest events first, a page at a time.
import type { Router } from '../../http/router.js'
import { ValidationError } from '../../errors.js'
import type { AuditCursor, AuditQuery } from '../../audit/audit-query.js'
import type { ChainedAuditEvent } from '../../audit/audit-event.js'
import { ok, type AdminHandler } from '../reply.js'
import { checkQuery, queryValue, timestamp } from '../validate.js'

const AUDIT_QUERY = new Set(['key_id', 'limit', 'before'])
const MAX_PAGE = 1000
/** audit event ids are UUIDs (randomUUID), lowercase */
const EVENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export function registerAuditRoutes (router: Router<AdminHandler>, audit: AuditQuery): void {
  router.on('GET', '/admin/audit', async ({ query }) => {
    checkQuery(query, AUDIT_QUERY)
    const keyId = queryValue(query, 'key_id')
    const rawLimit = queryValue(query, 'limit') ?? '100'
    if (!/^\d+$/.test(rawLimit) || Number(rawLimit) < 1 || Number(rawLimit) > MAX_PAGE) {
      throw new ValidationError('limit', `must be a whole number from 1 to ${MAX_PAGE}`)
    }
    const before = auditCursor(queryValue(query, 'before'))
    const limit = Number(rawLimit)
    const events = await audit.list(keyId, limit, before)
    const last = events.at(-1)
    return ok({
      events: events.map(eventView),
      // the next page's `before`: the last event's time and id, so events sharing a millisecond
      // across a page boundary are neither skipped nor repeated
      next_before: events.length === limit && last !== undefined ? `${new Date(last.ts).toISOString()}~${last.id}` : null,
    })
  })
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
