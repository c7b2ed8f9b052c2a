// A loopback TCP connection that a test drives byte by byte (half a request, a trickle, a
// reader that stops reading) while recording what came back and when the peer let go.
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'

export interface RawConnection {
  socket: Socket
  /** every byte received so far */
  received (): Buffer
  /** resolves when the socket has closed, with milliseconds since it connected */
  closed: Promise<number>
  /** closes our side (idempotent) */
  destroy (): void
}

export async function openRawConnection (port: number): Promise<RawConnection> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const openedAt = Date.now()
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  // a reset is one of the ways a server may cut a peer off; 'close' follows either way
  socket.on('error', () => {})
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - openedAt)))
  return {
    socket,
    received: () => Buffer.concat(chunks),
    closed,
    destroy: () => { socket.destroy() },
  }
}

/** resolves with the close time, or with null when `ms` pass first */
export async function closedWithin (conn: RawConnection, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<null>((resolve) => { timer = setTimeout(resolve, ms, null) })
  try {
    return await Promise.race([conn.closed, late])
  } finally {
    clearTimeout(timer)
  }
}

export interface ParsedHead {
  status: number
  headers: Record<string, string>
  /** the bytes after the blank line, undecoded */
  body: Buffer
}

/** the status line and headers of the first response in `bytes`, or null if they are incomplete */
export function parseHead (bytes: Buffer): ParsedHead | null {
  const end = bytes.indexOf('\r\n\r\n')
  if (end === -1) return null
  const [statusLine, ...lines] = bytes.subarray(0, end).toString('latin1').split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const i = line.indexOf(':')
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim()
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: bytes.subarray(end + 4) }
}
