// Reads an admin request body as JSON within a byte limit. The outcome is a value: the
// server answers 413 or 400 from it without exceptions in the way.
import type { IncomingMessage } from 'node:http'

export type BodyResult =
  | { ok: true; value: unknown }
  | { ok: false; code: 'payload_too_large' | 'invalid_request'; message: string }

export function readJsonBody (req: IncomingMessage, limit: number): Promise<BodyResult> {
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.resolve(tooLarge(limit))
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let done = false
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > limit) {
        // Stop buffering; the server answers now and closes the connection behind the reply.
        done = true
        req.off('data', onData)
        req.pause()
        resolve(tooLarge(limit))
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.once('end', () => {
      if (done) return
      done = true
      resolve(parse(Buffer.concat(chunks, size)))
    })
    req.once('error', (err) => {
      if (done) return
      done = true
      reject(err)
    })
  })
}

function parse (raw: Buffer): BodyResult {
  if (raw.length === 0) return { ok: true, value: undefined }
  let value: unknown
  try {
    value = JSON.parse(raw.toString('utf8'))
  } catch {
    // The parser's message quotes the input, which may hold a secret: say only what is wrong.
    return { ok: false, code: 'invalid_request', message: 'body: malformed JSON' }
  }
  const tooDeep = deeperThan(value, MAX_DEPTH)
  if (tooDeep !== null) return { ok: false, code: 'invalid_request', message: `${tooDeep}: nested more than ${MAX_DEPTH} levels deep` }
  return { ok: true, value }
}

/**
 * Objects and arrays nested this deep are refused before any handler sees them: validation,
 * storage and the workers' compilation walk bodies recursively, and 10,000 levels of an opaque
 * field (a payment's `extra`) overflowed the stack. Nothing RelayKey takes needs more than a few.
 */
const MAX_DEPTH = 32
const FIELD_LEVELS = 2

/**
 * the field holding the first value nested deeper than `max`, named as validation names fields
 * down to FIELD_LEVELS (`payment.extra`, not its thirty levels below), or null
 */
function deeperThan (root: unknown, max: number): string | null {
  // iterative: the check itself must not be what overflows
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value: root, path: 'body', depth: 0 }]
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!
    if (typeof value !== 'object' || value === null) continue
    if (depth >= max) return path
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) stack.push({ value: value[i], path: depth < FIELD_LEVELS ? `${path}[${i}]` : path, depth: depth + 1 })
    } else {
      for (const [key, child] of Object.entries(value)) stack.push({ value: child, path: depth >= FIELD_LEVELS ? path : path === 'body' ? key : `${path}.${key}`, depth: depth + 1 })
    }
  }
  return null
}

function tooLarge (limit: number): BodyResult {
  return { ok: false, code: 'payload_too_large', message: `body: larger than ${limit} bytes` }
}
