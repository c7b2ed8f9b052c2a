// The admin bearer tokens: which named token, if any, a request carries. Every token is hashed
// to a fixed length and every one is compared, so the time taken says nothing about the
// presented token's length or content, nor which token it came close to.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { AdminScope, AdminTokenSpec } from '../config/admin-tokens.js'

const SCHEME = /^bearer +/i

/** who is calling: a token's name and scope (never the token) */
export interface AdminCaller {
  readonly name: string
  readonly scope: AdminScope
}

export class AdminTokens {
  readonly #digests: ReadonlyArray<{ digest: Buffer; caller: AdminCaller }>

  constructor (tokens: readonly AdminTokenSpec[]) {
    if (tokens.length === 0) throw new RangeError('at least one admin token is needed')
    this.#digests = tokens.map((t) => {
      if (t.token.length === 0) throw new RangeError(`admin token ${t.name} must not be empty`)
      return { digest: sha256(t.token), caller: Object.freeze({ name: t.name, scope: t.scope }) }
    })
  }

  /** the caller an `Authorization` header value names, or null */
  identify (authorization: string | undefined): AdminCaller | null {
    if (authorization === undefined) return null
    const match = SCHEME.exec(authorization)
    if (match === null) return null
    const presented = sha256(authorization.slice(match[0].length).trim())
    let found: AdminCaller | null = null
    for (const { digest, caller } of this.#digests) {
      if (timingSafeEqual(presented, digest) && found === null) found = caller
    }
    return found
  }
}

function sha256 (value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}
