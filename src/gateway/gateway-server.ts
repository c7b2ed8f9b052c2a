// The proxy (data-plane) listener: `/proxy/{partner}/{*path}`, `/health`, `/ready`, nothing
// else. Each worker of the cluster runs one of these on the shared port.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import { Router } from '../http/router.js'
import { errorBody, type ErrorCode } from '../errors.js'
import { PROXY_METHODS, traceRefusal } from './trace-methods.js'
import { noteLatestRequest, rawErrorResponse, sendError, sendJson } from './respond.js'
import { ProxyExchange } from './proxy-exchange.js'
import { answerMalformedBody } from './exchange-client-flow.js'
import type { ExchangeDeps } from './exchange-state.js'

export interface GatewayDeps extends ExchangeDeps {
  /** resolves when every store the data plane needs answers */
  ready (): Promise<void>
}

type RouteHandler = (deps: GatewayDeps, req: IncomingMessage, res: ServerResponse, params: string[], query: string, requestId: string) => void

const HEALTH_BODY = JSON.stringify({ status: 'ok' })

/** how long a slow client may take (RELAYKEY_CLIENT_*_TIMEOUT_MS) */
interface ClientTimeouts {
  /** all request headers */
  headersTimeoutMs: number
  /** the whole request, body included (not the response) */
  requestTimeoutMs: number
}

export function createGatewayServer (deps: GatewayDeps, timeouts: ClientTimeouts): Server {
  const router = new Router<RouteHandler>()
  router.on('GET', '/health', health)
  router.on('GET', '/ready', ready)
  router.on('*', '/proxy/:partner/*', proxy)

  const server = createServer({
    headersTimeout: timeouts.headersTimeoutMs,
    requestTimeout: timeouts.requestTimeoutMs,
    // Node enforces both only when it sweeps its connections (every 30 s by default)
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(timeouts.headersTimeoutMs / 2))),
    keepAliveTimeout: 65_000,
    // a missing Host is refused by the exchange, with the contract's JSON and a request id
    requireHostHeader: false,
  }, function onRequest (req, res) {
    // HOT PATH: route on the raw URL; the query string is split off once and never parsed.
    const requestId = randomUUID()
    noteLatestRequest(req)
    const url = req.url!
    if (url.charCodeAt(0) !== 47 /* / */) return sendError(res, 'bad_request', 'absolute-form request targets are not accepted', requestId)
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const match = router.find(req.method!, path)
    if (match === null) return sendError(res, 'not_found', 'no such route', requestId)
    match.handler(deps, req, res, match.params, q === -1 ? '' : url.slice(q + 1), requestId)
  })
  // an Expect other than 100-continue: Node would answer a bare 417; RelayKey never forwards
  // Expect, so the request is served as if it had none
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => server.emit('request', req, res))
  // Expect: 100-continue: Node would say "100 Continue" at once, and an unauthenticated client
  // would upload its whole body before hearing 401. The exchange says it once the request has
  // passed its checks, just before reading the body.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => server.emit('request', req, res))
  // CONNECT never reaches 'request'; without this listener Node would just drop the socket
  server.on('connect', refuseConnect)
  // requests Node's parser rejects (malformed, header overflow) still get the contract's JSON
  server.on('clientError', refuseMalformed)
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
  socket.end(rawRefusal(400, 'Bad Request', 'CONNECT is not supported'))
}

function refuseMalformed (err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || (err.code === 'ECONNRESET')) return void socket.destroy()
  const answering = (socket as Socket & { _httpMessage?: unknown })._httpMessage != null
  // bytes after a request that said Connection: close (or HTTP/1.0): they are ignored, and the
  // request being answered still gets its answer before Node closes the connection
  if (answering && err.code === 'HPE_CLOSED_CONNECTION') return
  if (answering) {
    // the body of the request being answered broke framing (its request is not complete, no
    // answer has begun): that request is answered 400, with its own id and audit event
    const res = (socket as Socket & { _httpMessage: ServerResponse })._httpMessage
    if (err.code?.startsWith('HPE_') === true && res.req?.complete === false && answerMalformedBody(res)) return
    // otherwise (its upload stalled, or garbage was pipelined behind a complete request) a raw
    // refusal now would reach its client as that request's answer, or land in the middle of
    // its body, so the connection just goes
    return void socket.destroy()
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    // RELAYKEY_CLIENT_HEADERS_TIMEOUT_MS / _REQUEST_TIMEOUT_MS: a slow or stalled client
    return void socket.end(rawRefusal(408, 'Request Timeout', 'the request did not arrive in time'))
  }
  // TRACK (IIS's TRACE) is no method Node's parser knows; like TRACE it is never forwarded, and
  // says so rather than 'not valid HTTP'
  const packet = (err as { rawPacket?: Buffer }).rawPacket
  if (err.code === 'HPE_INVALID_METHOD' && packet !== undefined && packet.subarray(0, 6).toString('latin1').toUpperCase() === 'TRACK ') {
    return void socket.end(rawRefusal(405, 'Method Not Allowed', traceRefusal('TRACK'), 'method_not_allowed', `allow: ${PROXY_METHODS}\r\n`))
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW'
  socket.end(rawRefusal(tooLarge ? 431 : 400, tooLarge ? 'Request Header Fields Too Large' : 'Bad Request',
    tooLarge ? 'the request headers are too large' : 'the request is not valid HTTP'))
}

/** a whole HTTP/1.1 response for a socket Node will not give us a response object for */
function rawRefusal (status: number, reason: string, message: string, code: ErrorCode = 'bad_request', extraHeaders = ''): string {
  const requestId = randomUUID()
  return rawErrorResponse(status, reason, errorBody(code, message, requestId), requestId, extraHeaders)
}
