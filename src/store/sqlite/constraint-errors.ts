// SQLite constraint violations → the errors the admin API answers with (409 / 400). SQLite
// names the columns of a UNIQUE violation but not the reference behind a FOREIGN KEY one, so
// the caller says which reference it was.
import { ConflictError, ValidationError } from '../../errors.js'

const UNIQUE_VIOLATIONS: Record<string, [field: string, message: string]> = {
  'partners.slug': ['slug', 'a partner with this slug already exists'],
  'credentials.partner_id, credentials.name': ['name', 'the partner already has a credential with this name'],
  'policies.name': ['name', 'a policy with this name already exists'],
  'bindings.policy_id, bindings.partner_id': ['partner', 'the policy is already bound to this partner'],
}

const UNIQUE_PREFIX = 'UNIQUE constraint failed: '

/**
 * Runs a write, turning constraint violations into admin errors. `missingReference` names the
 * field whose reference does not exist when a FOREIGN KEY check fails.
 */
export function guarded<T> (work: () => T, missingReference?: () => string): T {
  try {
    return work()
  } catch (err) {
    const { code, message } = err as { code?: string; message?: string }
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' && message?.startsWith(UNIQUE_PREFIX) === true) {
      const unique = UNIQUE_VIOLATIONS[message.slice(UNIQUE_PREFIX.length)]
      if (unique !== undefined) throw new ConflictError(unique[0], unique[1])
    }
    if (isForeignKeyViolation(err) && missingReference !== undefined) {
      const field = missingReference()
      throw new ValidationError(field, `no such ${field}`)
    }
    throw err
  }
}

// ON DELETE RESTRICT fails as SQLITE_CONSTRAINT_TRIGGER, a missing parent as
// SQLITE_CONSTRAINT_FOREIGNKEY; the message is the same for both.
export function isForeignKeyViolation (err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: string; message?: string }
  return code?.startsWith('SQLITE_CONSTRAINT') === true && message === 'FOREIGN KEY constraint failed'
}
