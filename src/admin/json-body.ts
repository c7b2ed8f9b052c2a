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
  try {
    return { ok: true, value: JSON.parse(raw.toString('utf8')) }
  } catch {
    // The parser's message quotes the input, which may hold a secret: say only what is wrong.
    return { ok: false, code: 'invalid_request', message: 'body: malformed JSON' }
  }
}

function tooLarge (limit: number): BodyResult {
  return { ok: false, code: 'payload_too_large', message: `body: larger than ${limit} bytes` }
}
