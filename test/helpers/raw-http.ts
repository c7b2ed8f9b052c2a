// Requests that fetch() would refuse or normalise: raw request targets, duplicate Host,
// arbitrary methods. Writes the bytes given and reads one response.
import { connect } from 'node:net'

export interface RawResponse {
  status: number
  /** the reason phrase, as the bytes arrived (latin1) */
  statusText: string
  headers: Record<string, string>
  body: string
}

export function rawRequest (port: number, request: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { data += chunk })
    socket.on('error', reject)
    socket.on('close', () => {
      const head = data.slice(0, data.indexOf('\r\n\r\n'))
      const [statusLine, ...lines] = head.split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const i = line.indexOf(':')
        headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim()
      }
      const body = data.slice(head.length + 4)
      resolve({ status: Number(statusLine?.split(' ')[1]), statusText: statusLine?.split(' ').slice(2).join(' ') ?? '', headers, body: headers['transfer-encoding'] === 'chunked' ? dechunk(body) : body })
    })
    socket.write(request.includes('Connection:') ? request : request.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'))
  })
}

function dechunk (body: string): string {
  let out = ''
  let pos = 0
  for (;;) {
    const lineEnd = body.indexOf('\r\n', pos)
    if (lineEnd === -1) return out
    const size = parseInt(body.slice(pos, lineEnd), 16)
    if (!(size > 0)) return out
    out += body.slice(lineEnd + 2, lineEnd + 2 + size)
    pos = lineEnd + 2 + size + 2
  }
}
