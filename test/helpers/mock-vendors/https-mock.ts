// The HTTPS server under every mock vendor: loopback, port 0, whole body collected before the
// vendor's handler decides, and every request recorded (with the vendor's verdict) in `received`.
import { createServer, type Server, type ServerOptions } from 'node:https'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { makeTestPki, type PemPair } from '../test-certificates.js'

export interface VendorRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  body: Buffer
  /** subject CN of the client certificate, when the client presented one */
  clientCn?: string
}

export interface RejectedHandshake {
  /** the server side's error: ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE for a missing client
   * certificate, but only ECONNRESET for an unverifiable one (see authorizationError) */
  code?: string
  message: string
  /** why the client certificate failed verification, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE: Node checks
   * it after the handshake and then drops the socket without a TLS alert, so the client sees a reset */
  authorizationError?: string
}

export interface JsonAnswer {
  status: number
  json: unknown
  headers?: Record<string, string>
}

/** decides the answer and what to record (the request plus the vendor's verdict) */
export type VendorHandler<R extends VendorRequest> = (request: VendorRequest) => { record: R; answer: JsonAnswer }

export interface HttpsMock<R extends VendorRequest> {
  /** https://127.0.0.1:PORT */
  url: string
  port: number
  received: R[]
  /** TLS handshakes the server refused (e.g. a missing or foreign client certificate) */
  rejectedHandshakes: RejectedHandshake[]
  server: Server
  close (): Promise<void>
}

export interface HttpsMockOptions {
  /** the server's certificate: pki.server unless a test wants a bad one */
  serverCert?: PemPair
  /** extra TLS options (requestCert, ca, …) */
  tls?: Omit<ServerOptions, 'cert' | 'key'>
}

export async function startHttpsMock<R extends VendorRequest> (
  options: HttpsMockOptions,
  handle: VendorHandler<R>,
): Promise<HttpsMock<R>> {
  const { cert, key } = options.serverCert ?? makeTestPki().server
  const received: R[] = []
  const rejectedHandshakes: RejectedHandshake[] = []
  const server = createServer({ ...options.tls, cert, key }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const { record, answer } = handle(describe(req, Buffer.concat(chunks)))
      received.push(record)
      const body = JSON.stringify(answer.json)
      res.writeHead(answer.status, {
        ...answer.headers,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      })
      res.end(body)
    })
  })
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    const rejected: RejectedHandshake = { message: err.message }
    if (err.code !== undefined) rejected.code = err.code
    if (socket.authorizationError) rejected.authorizationError = String(socket.authorizationError)
    rejectedHandshakes.push(rejected)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    received,
    rejectedHandshakes,
    server,
    async close () {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function describe (req: IncomingMessage, body: Buffer): VendorRequest {
  const request: VendorRequest = {
    method: req.method!,
    url: req.url!,
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    body,
  }
  // an empty object when the client sent no certificate
  const peer = (req.socket as TLSSocket).getPeerCertificate()
  const cn = peer?.subject?.CN
  if (cn !== undefined) request.clientCn = Array.isArray(cn) ? cn.join(',') : cn
  return request
}

