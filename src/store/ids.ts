// Opaque, prefixed ids: readable in logs (`key_…`, `pol_…`) and unguessable.
import { randomBytes } from 'node:crypto'

export type IdKind = 'prt' | 'cred' | 'pol' | 'bnd' | 'key'

export function newId (kind: IdKind): string {
  return `${kind}_${randomBytes(12).toString('base64url')}`
}
