// A stand-in for the vendor API: a real HTTP server on loopback that records what reached it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { once } from 'node:events'

export interface ReceivedRequest {
  method: string
  url: string
  headers: IncomingMessage['headers']
  rawHeaders: string[]
  body: Buffer
}

export type PartnerHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void

export interface MockPartner {
  url: string
  port: number
  received: ReceivedRequest[]
  /** replace how the partner answers (default: 200 JSON echo of method and url) */
  handle (handler: PartnerHandler): void
  close (): Promise<void>
  server: Server
}

const echo: PartnerHandler = (req, res) => {
  const body = JSON.stringify({ ok: true, method: req.method, url: req.url })
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

export async function startMockPartner (options: { collectBodies?: boolean } = {}): Promise<MockPartner> {
  let handler = echo
  const received: ReceivedRequest[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    if (options.collectBodies === false) req.resume()
    else req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      received.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body })
      handler(req, res, body)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    handle (h) { handler = h },
    async close () {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
    server,
  }
}
