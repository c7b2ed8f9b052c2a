// The proxy (data-plane) listener: `/proxy/{partner}/{*path}`, `/health`, `/ready`, nothing
// else. Each worker of the cluster runs one of these on the shared port.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import { Router } from '../http/router.js'
import { sendError, sendJson } from './respond.js'
import { ProxyExchange, type ExchangeDeps } from './proxy-exchange.js'

export interface GatewayDeps extends ExchangeDeps {
  /** resolves when every store the data plane needs answers */
  ready (): Promise<void>
}

type RouteHandler = (deps: GatewayDeps, req: IncomingMessage, res: ServerResponse, params: string[], query: string, requestId: string) => void

const HEALTH_BODY = JSON.stringify({ status: 'ok' })

export function createGatewayServer (deps: GatewayDeps): Server {
  const router = new Router<RouteHandler>()
  router.on('GET', '/health', health)
  router.on('GET', '/ready', ready)
  router.on('*', '/proxy/:partner/*', proxy)

  const server = createServer({
    // slow clients: headers within 10 s, the whole request (not the response) within 5 min
    headersTimeout: 10_000,
    requestTimeout: 300_000,
    keepAliveTimeout: 65_000,
  }, function onRequest (req, res) {
    // HOT PATH: route on the raw URL; the query string is split off once and never parsed.
    const requestId = randomUUID()
    const url = req.url!
    if (url.charCodeAt(0) !== 47 /* / */) return sendError(res, 'bad_request', 'absolute-form request targets are not accepted', requestId)
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const match = router.find(req.method!, path)
    if (match === null) return sendError(res, 'not_found', 'no such route', requestId)
    match.handler(deps, req, res, match.params, q === -1 ? '' : url.slice(q + 1), requestId)
  })
  // CONNECT never reaches 'request'; without this listener Node would just drop the socket
  server.on('connect', refuseConnect)
  return server
}

function proxy (deps: GatewayDeps, req: IncomingMessage, res: ServerResponse, params: string[], query: string, requestId: string): void {
  new ProxyExchange(deps, req, res, requestId).start(params[0]!, params[1]!, query)
}

function health (_deps: GatewayDeps, _req: IncomingMessage, res: ServerResponse, _params: string[], _query: string, requestId: string): void {
  sendJson(res, 200, HEALTH_BODY, requestId)
}

function ready (deps: GatewayDeps, _req: IncomingMessage, res: ServerResponse, _params: string[], _query: string, requestId: string): void {
  deps.ready().then(
    () => sendJson(res, 200, JSON.stringify({ status: 'ready' }), requestId),
    () => sendJson(res, 503, JSON.stringify({ status: 'unavailable' }), requestId),
  )
}

function refuseConnect (_req: IncomingMessage, socket: Socket): void {
  const body = JSON.stringify({ error: { code: 'bad_request', message: 'CONNECT is not supported', request_id: randomUUID() } })
  socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}
