// PostgreSQL constraint violations → the errors the admin API answers with (409 / 400), keyed
// by the constraint names given in migrations/0001_control_plane.sql.
import { ConflictError, ValidationError } from '../../errors.js'

const UNIQUE_VIOLATIONS: Record<string, [field: string, message: string]> = {
  partners_slug_key: ['slug', 'a partner with this slug already exists'],
  credentials_partner_name_key: ['name', 'the partner already has a credential with this name'],
  policies_name_key: ['name', 'a policy with this name already exists'],
  bindings_policy_partner_key: ['partner', 'the policy is already bound to this partner'],
}
const MISSING_REFERENCES: Record<string, [field: string, message: string]> = {
  credentials_partner_fk: ['partner', 'no such partner'],
  bindings_policy_fk: ['policy', 'no such policy'],
  bindings_partner_fk: ['partner', 'no such partner'],
  virtual_keys_policy_fk: ['policy', 'no such policy'],
}

/** Runs a write, turning constraint violations into the errors the admin API answers with. */
export async function guarded<T> (query: Promise<T>): Promise<T> {
  try {
    return await query
  } catch (err) {
    const constraint = (err as { constraint_name?: string }).constraint_name ?? ''
    const code = errorCode(err)
    const unique = code === '23505' ? UNIQUE_VIOLATIONS[constraint] : undefined
    if (unique !== undefined) throw new ConflictError(unique[0], unique[1])
    const missing = code === '23503' ? MISSING_REFERENCES[constraint] : undefined
    if (missing !== undefined) throw new ValidationError(missing[0], missing[1])
    throw err
  }
}

export function isForeignKeyViolation (err: unknown): boolean {
  return errorCode(err) === '23503'
}

function errorCode (err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code
}
