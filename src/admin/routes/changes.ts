// GET /admin/changes: the change log, newest first, a page at a time, narrowed by resource,
// token name, action and a time range.
import type { Router } from '../../http/router.js'
import { ValidationError } from '../../errors.js'
import type { ChangeAction, ChangeFilter, ResourceType } from '../../admin-changes/admin-change.js'
import type { ControlStore } from '../../store/control-store.js'
import { ok, type AdminHandler } from '../reply.js'
import { checkQuery, queryValue, queryWholeNumber, timestamp } from '../validate.js'

const CHANGES_QUERY = new Set(['resource_type', 'resource_id', 'token', 'action', 'from', 'to', 'before', 'limit'])
const RESOURCE_TYPES: readonly ResourceType[] = ['partner', 'credential', 'policy', 'binding', 'key']
const ACTIONS: readonly ChangeAction[] = ['create', 'update', 'delete', 'revoke', 'rotate']
const MAX_PAGE = 1000

export function registerChangeRoutes (router: Router<AdminHandler>, store: ControlStore): void {
  router.on('GET', '/admin/changes', async ({ query }) => {
    checkQuery(query, CHANGES_QUERY)
    const filter: ChangeFilter = { limit: queryWholeNumber(query, 'limit', 1, MAX_PAGE) ?? 100 }
    const type = oneOf(query, 'resource_type', RESOURCE_TYPES)
    if (type !== null) filter.resource_type = type
    const action = oneOf(query, 'action', ACTIONS)
    if (action !== null) filter.action = action
    const resourceId = queryValue(query, 'resource_id')
    if (resourceId !== null) filter.resource_id = resourceId
    const token = queryValue(query, 'token')
    if (token !== null) filter.token_name = token
    const from = queryValue(query, 'from')
    if (from !== null) filter.since = timestamp(from, 'from').getTime()
    const to = queryValue(query, 'to')
    if (to !== null) filter.until = timestamp(to, 'to').getTime()
    if (filter.since !== undefined && filter.until !== undefined && filter.since > filter.until) throw new ValidationError('from', 'must not be after to')
    const before = queryWholeNumber(query, 'before', 1, Number.MAX_SAFE_INTEGER)
    if (before !== null) filter.before_seq = before
    // one more than asked for tells whether a next page exists
    const found = await store.listChanges({ ...filter, limit: filter.limit + 1 })
    const changes = found.slice(0, filter.limit)
    return ok({ changes, next_before: found.length > filter.limit ? changes.at(-1)!.seq : null })
  })
}

function oneOf<T extends string> (query: URLSearchParams, name: string, values: readonly T[]): T | null {
  const raw = queryValue(query, name)
  if (raw === null) return null
  if (!(values as readonly string[]).includes(raw)) throw new ValidationError(name, `must be one of ${values.join(', ')}`)
  return raw as T
}
