// Virtual key format: `vk_` + 22 base62 chars (128 random bits) + 6 base62 check chars.
//
//   vk_ 3xQ9…(22)… Ab12Cd
//       └ body ────┘└ check ┘
//
// digest = HMAC-SHA256(pepper, body) is what the stores keep. The check chars are derived
// from the same digest, so one HMAC per request both rejects typos and forgeries (nobody
// without the pepper can make a key whose check chars match) and yields the lookup hash.
import { createHmac, randomBytes } from 'node:crypto'

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const PREFIX = 'vk_'
const BODY_LENGTH = 22
const CHECK_LENGTH = 6
export const VIRTUAL_KEY_LENGTH = PREFIX.length + BODY_LENGTH + CHECK_LENGTH
/** characters of a key shown in lists: `vk_` + 8 of the body */
const DISPLAY_PREFIX_LENGTH = PREFIX.length + 8

export interface IssuedKey {
  key: string
  prefix: string
  digest: Buffer
}

export class VirtualKeyCodec {
  readonly #pepper: Buffer

  constructor (pepper: Buffer) {
    if (pepper.length < 32) throw new RangeError('the HMAC pepper must be at least 32 bytes')
    this.#pepper = pepper
  }

  issue (): IssuedKey {
    const body = base62(randomBytes(16), BODY_LENGTH)
    const digest = this.#digest(body)
    const key = PREFIX + body + checkChars(digest)
    return { key, prefix: key.slice(0, DISPLAY_PREFIX_LENGTH), digest }
  }

  /**
   * The lookup digest of a presented key, or null when its shape or check chars are wrong.
   * HOT PATH: one HMAC, no allocation beyond the digest; the check compares char codes.
   */
  verify (key: string): Buffer | null {
    if (key.length !== VIRTUAL_KEY_LENGTH || key.charCodeAt(0) !== 118 /* v */ ||
        key.charCodeAt(1) !== 107 /* k */ || key.charCodeAt(2) !== 95 /* _ */) return null
    const bodyEnd = PREFIX.length + BODY_LENGTH
    for (let i = PREFIX.length; i < VIRTUAL_KEY_LENGTH; i++) {
      if (!isBase62(key.charCodeAt(i))) return null
    }
    const digest = this.#digest(key.slice(PREFIX.length, bodyEnd))
    let n = digest.readUIntBE(0, 6)
    for (let i = VIRTUAL_KEY_LENGTH - 1; i >= bodyEnd; i--) {
      if (key.charCodeAt(i) !== ALPHABET.charCodeAt(n % 62)) return null
      n = Math.floor(n / 62)
    }
    return digest
  }

  #digest (body: string): Buffer {
    return createHmac('sha256', this.#pepper).update(body).digest()
  }
}

function checkChars (digest: Buffer): string {
  let n = digest.readUIntBE(0, 6)
  let out = ''
  for (let i = 0; i < CHECK_LENGTH; i++) {
    out = ALPHABET[n % 62] + out
    n = Math.floor(n / 62)
  }
  return out
}

function base62 (bytes: Buffer, length: number): string {
  let n = BigInt('0x' + bytes.toString('hex'))
  let out = ''
  for (let i = 0; i < length; i++) {
    out = ALPHABET[Number(n % 62n)] + out
    n /= 62n
  }
  return out
}

function isBase62 (c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
}
