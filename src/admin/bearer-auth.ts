// The admin bearer token check. Both sides are hashed to a fixed length first, so the
// comparison takes the same time whatever the presented token's length or content.
import { createHash, timingSafeEqual } from 'node:crypto'

const SCHEME = /^bearer +/i

export class BearerToken {
  readonly #digest: Buffer

  constructor (token: string) {
    if (token.length === 0) throw new RangeError('the admin token must not be empty')
    this.#digest = sha256(token)
  }

  /** Does an `Authorization` header value carry the token? */
  accepts (authorization: string | undefined): boolean {
    if (authorization === undefined) return false
    const match = SCHEME.exec(authorization)
    if (match === null) return false
    return timingSafeEqual(sha256(authorization.slice(match[0].length).trim()), this.#digest)
  }
}

function sha256 (value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}
