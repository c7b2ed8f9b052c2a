// One Redis command over a raw loopback socket: lets the harnesses probe, pause and inspect the
// servers they start without depending on the client library the tests exercise.
import { connect } from 'node:net'

/** a decoded RESP2 reply; an error nested inside an array stays an Error value */
export type RespValue = string | number | null | Error | RespValue[]

export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError'
}

export interface RedisCommandOptions {
  host?: string
  /** give up (reject) after this long without a complete reply */
  timeoutMs?: number
}

/** sends `args` as one command and resolves with the reply; rejects on an error reply */
export function redisCommand (port: number, args: readonly string[], options: RedisCommandOptions = {}): Promise<RespValue> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: options.host ?? '127.0.0.1', port })
    let buffered: Buffer = Buffer.alloc(0)
    let settled = false
    const finish = (err: Error | null, value?: RespValue): void => {
      if (settled) return
      settled = true
      socket.destroy()
      if (err !== null) reject(err)
      else resolve(value ?? null)
    }
    socket.setTimeout(options.timeoutMs ?? 5000, () => {
      finish(new Error(`redis 127.0.0.1:${port} did not answer ${args[0]} in time`))
    })
    socket.on('error', (err) => finish(err))
    socket.on('close', () => finish(new Error(`redis 127.0.0.1:${port} closed the connection before replying to ${args[0]}`)))
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
      let parsed: ReturnType<typeof parseReply>
      try {
        parsed = parseReply(buffered, 0)
      } catch (err) {
        return finish(err as Error)
      }
      if (parsed === null) return
      if (parsed.value instanceof Error) finish(parsed.value)
      else finish(null, parsed.value)
    })
    socket.write(encodeCommand(args))
  })
}

/** CLUSTER INFO / INFO text as a field → value map */
export function parseInfo (text: string): Map<string, string> {
  const fields = new Map<string, string>()
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1))
  }
  return fields
}

function encodeCommand (args: readonly string[]): Buffer {
  let out = `*${args.length}\r\n`
  for (const arg of args) out += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`
  return Buffer.from(out)
}

/** one reply starting at `offset`, or null while it is incomplete */
function parseReply (buf: Buffer, offset: number): { value: RespValue; next: number } | null {
  const lineEnd = buf.indexOf('\r\n', offset)
  if (lineEnd === -1) return null
  const line = buf.toString('utf8', offset + 1, lineEnd)
  const next = lineEnd + 2
  switch (buf[offset]) {
    case 0x2b: // '+'
      return { value: line, next }
    case 0x2d: // '-'
      return { value: new RedisReplyError(line), next }
    case 0x3a: // ':'
      return { value: Number(line), next }
    case 0x24: { // '$'
      const length = Number(line)
      if (length < 0) return { value: null, next }
      if (buf.length < next + length + 2) return null
      return { value: buf.toString('utf8', next, next + length), next: next + length + 2 }
    }
    case 0x2a: { // '*'
      const count = Number(line)
      if (count < 0) return { value: null, next }
      const items: RespValue[] = []
      let at = next
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, at)
        if (item === null) return null
        items.push(item.value)
        at = item.next
      }
      return { value: items, next: at }
    }
    default:
      throw new Error(`unexpected RESP type byte ${buf[offset]}`)
  }
}
